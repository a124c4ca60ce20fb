"""The baseline for bench/serve_http.py: a multi-user server built the way a user would
today, without our inference server (not a test).

PEFT's `PeftModel` with one adapter per user loaded by name (from the PEFT folders the
registry exports), `set_adapter(user)` per request and `generate()` one request at a time
(PEFT switches the active adapter for the whole model, so requests of different users
cannot share a forward), behind the standard library's threading HTTP server. It speaks
the slice of OpenAI's `POST /v1/completions` the benchmark uses: `prompt` (text), `user`,
`max_tokens`, greedy decoding; `GET /healthz`.

    python bench/peft_baseline_server.py --model DIR --adapters DIR --port 8200 [--device cpu]

`--adapters DIR` holds one PEFT folder per user, named by the user id.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch


class Baseline:
    def __init__(self, model_dir: Path, adapters_dir: Path, device: str) -> None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        base = AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
        folders = sorted(p for p in adapters_dir.iterdir() if p.is_dir())
        if not folders:
            raise SystemExit(f"no adapter folders in {adapters_dir}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = PeftModel.from_pretrained(base, folders[0], adapter_name=folders[0].name)
            for folder in folders[1:]:
                model.load_adapter(folder, adapter_name=folder.name)
        self.model = model.eval()
        self.users = {p.name for p in folders}
        self.device = device
        self.lock = threading.Lock()  # one model, one active adapter: one request at a time

    def complete(self, body: dict) -> tuple[int, dict]:
        user, prompt = body.get("user"), body.get("prompt")
        if user not in self.users:
            return 404, {"error": {"code": "unknown_user", "message": f"no adapter for {user!r}"}}
        if not isinstance(prompt, str):
            return 422, {"error": {"code": "invalid", "message": "prompt must be a string"}}
        max_tokens = int(body.get("max_tokens", 16))
        ids = self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.device)
        with self.lock, torch.no_grad():
            self.model.set_adapter(user)
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[0, ids.shape[1] :].tolist()
        eos = self.tokenizer.eos_token_id
        finish = "stop" if eos in new else "length"
        if eos in new:
            new = new[: new.index(eos) + 1]
        return 200, {
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "text": self.tokenizer.decode(new, skip_special_tokens=True),
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": ids.shape[1],
                "completion_tokens": len(new),
                "total_tokens": ids.shape[1] + len(new),
            },
        }


def handler(baseline: Baseline) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the benchmark's clients expect

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": {"code": "not_found", "message": self.path}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            if self.path != "/v1/completions" or length > 1 << 20:
                self._send(404, {"error": {"code": "not_found", "message": self.path}})
                return
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self._send(400, {"error": {"code": "invalid_json", "message": "not JSON"}})
                return
            self._send(*baseline.complete(body))

        def log_message(self, *args) -> None:
            pass

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: 64+ clients connect at once


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--adapters", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    baseline = Baseline(args.model, args.adapters, args.device)
    Server((args.host, args.port), handler(baseline)).serve_forever()


if __name__ == "__main__":
    main()
