// Hand-written SVG line charts: axes with "nice" ticks, several series, accessible (an
// aria-label summary and a visually hidden table of the points), as wide as the container
// and redrawn in place when called again with new data (a live job's loss).

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 220;
const MARGIN = { top: 12, right: 14, bottom: 38, left: 54 };
const MAX_MARKERS = 60; // beyond this, dots would cover the line
const COLORS = ["#2563eb", "#d9480f", "#2b8a3e", "#9c36b5", "#c2255c", "#0b7285"];
// Visually hidden yet read by screen readers (the usual clip pattern). Styles go through
// CSSOM (node.style), which the console's CSP allows, never a style attribute, which it
// refuses; so the chart needs no stylesheet of its own.
const HIDDEN = {
  position: "absolute", width: "1px", height: "1px", padding: "0", margin: "-1px",
  overflow: "hidden", clip: "rect(0,0,0,0)", whiteSpace: "nowrap", border: "0",
};

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function html(tag, attrs = {}, text, style = {}) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  Object.assign(node.style, style);
  return node;
}

/** A step of 1, 2 or 5 times a power of ten giving about `count` intervals over the span. */
function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * power;
}

/** Rounded bounds and the ticks between them; a flat or single value still gets a span. */
export function niceTicks(min, max, count = 5, integers = false) {
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    [min, max] = [min - pad, max + pad];
  }
  let step = niceStep(max - min, count);
  if (integers) step = Math.max(1, Math.round(step));
  const low = Math.floor(min / step) * step;
  const high = Math.ceil(max / step) * step;
  const ticks = [];
  // toPrecision drops float noise (0.6000000000000001) that would show in the table.
  for (let i = 0; low + i * step <= high + step / 2; i++) ticks.push(Number((low + i * step).toPrecision(12)));
  return { low, high, ticks, step };
}

/** [min, max] without spreading into Math.min (a long live series would overflow the stack). */
function extent(values) {
  let low = Infinity;
  let high = -Infinity;
  for (const value of values) {
    if (value < low) low = value;
    if (value > high) high = value;
  }
  return [low, high];
}

function formatNumber(value, step) {
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e5 || magnitude < 1e-3) return value.toExponential(1);
  // As many decimals as the tick step needs, so that 0.25 and 0.5 read differently.
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step ?? magnitude))));
  return value.toFixed(decimals);
}

function cleanSeries(spec) {
  return (spec.series || []).map((series) => ({
    name: String(series.name ?? ""),
    points: (series.points || [])
      .filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]))
      .map((p) => [Number(p[0]), Number(p[1])])
      .sort((a, b) => a[0] - b[0]),
  }));
}

function summary(spec, series, xs, ys) {
  const title = spec.title || "Chart";
  const total = xs.length;
  if (total === 0) return `${title}: no data yet.`;
  const range = (values) => extent(values).map((v) => formatNumber(v)).join(" to ");
  const names = series.filter((s) => s.points.length).map((s) => s.name).join(", ");
  const last = series
    .filter((s) => s.points.length)
    .map((s) => `${s.name} ${formatNumber(s.points[s.points.length - 1][1])}`)
    .join(", ");
  return (
    `${title}: ${total} point${total === 1 ? "" : "s"} in ${series.filter((s) => s.points.length).length} series (${names}); ` +
    `${spec.xLabel || "x"} ${range(xs)}, ${spec.yLabel || "y"} ${range(ys)}; latest: ${last}.`
  );
}

function drawAxes(group, x, y, width, height, spec) {
  const plotBottom = height - MARGIN.bottom;
  for (const tick of y.ticks) {
    const py = y.scale(tick);
    group.append(
      svg("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: py, y2: py, class: "chart-grid",
        stroke: "currentColor", "stroke-opacity": 0.15 }),
      svg("text", { x: MARGIN.left - 6, y: py, "text-anchor": "end", "dominant-baseline": "middle",
        "font-size": 11, fill: "currentColor" }, formatNumber(tick, y.step)),
    );
  }
  for (const tick of x.ticks) {
    const px = x.scale(tick);
    group.append(
      svg("line", { x1: px, x2: px, y1: plotBottom, y2: plotBottom + 4, stroke: "currentColor" }),
      svg("text", { x: px, y: plotBottom + 16, "text-anchor": "middle", "font-size": 11,
        fill: "currentColor" }, formatNumber(tick, x.step)),
    );
  }
  group.append(
    svg("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: plotBottom, y2: plotBottom,
      stroke: "currentColor" }),
    svg("line", { x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: plotBottom,
      stroke: "currentColor" }),
  );
  if (spec.xLabel) {
    group.append(svg("text", { x: (MARGIN.left + width - MARGIN.right) / 2, y: height - 4,
      "text-anchor": "middle", "font-size": 12, fill: "currentColor" }, spec.xLabel));
  }
  if (spec.yLabel) {
    const cy = (MARGIN.top + plotBottom) / 2;
    group.append(svg("text", { x: 12, y: cy, transform: `rotate(-90 12 ${cy})`,
      "text-anchor": "middle", "font-size": 12, fill: "currentColor" }, spec.yLabel));
  }
}

function drawSeries(group, series, x, y) {
  series.forEach((s, index) => {
    if (!s.points.length) return;
    const color = COLORS[index % COLORS.length];
    const coords = s.points.map(([px, py]) => `${x.scale(px).toFixed(1)},${y.scale(py).toFixed(1)}`);
    const line = svg("polyline", { points: coords.join(" "), fill: "none", stroke: color,
      "stroke-width": 2, "stroke-linejoin": "round", class: "chart-line", "data-series": s.name });
    group.append(line);
    if (s.points.length <= MAX_MARKERS) {
      for (const [px, py] of s.points) {
        group.append(svg("circle", { cx: x.scale(px), cy: y.scale(py), r: 2.5, fill: color,
          class: "chart-point" }));
      }
    }
  });
}

function renderTable(table, spec, series) {
  table.replaceChildren(html("caption", {}, spec.title || "Chart data"));
  const head = html("tr");
  for (const label of ["Series", spec.xLabel || "x", spec.yLabel || "y"]) {
    head.append(html("th", { scope: "col" }, label));
  }
  const body = html("tbody");
  for (const s of series) {
    for (const [px, py] of s.points) {
      const row = html("tr");
      row.append(html("td", {}, s.name), html("td", {}, String(px)), html("td", {}, String(py)));
      body.append(row);
    }
  }
  const thead = html("thead");
  thead.append(head);
  table.append(thead, body);
}

function renderLegend(legend, series) {
  legend.replaceChildren();
  legend.hidden = series.length < 2;
  series.forEach((s, index) => {
    const item = html("li", {}, undefined, {
      display: "inline-flex", alignItems: "center", gap: ".3em", marginRight: "1em",
    });
    const swatch = html("span", { "aria-hidden": "true" }, undefined, {
      display: "inline-block", width: "1em", height: ".25em", background: COLORS[index % COLORS.length],
    });
    item.append(swatch, document.createTextNode(s.name));
    legend.append(item);
  });
}

function draw(figure) {
  const { spec, svgNode, table, legend } = figure._chart;
  const series = cleanSeries(spec);
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  // The container's width now; at least something readable on a 320 px phone.
  const width = Math.max(260, Math.round(figure.clientWidth || figure.parentElement?.clientWidth || 600));
  svgNode.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
  svgNode.setAttribute("aria-label", summary(spec, series, xs, ys));
  const group = svg("g");
  if (xs.length === 0) {
    group.append(svg("text", { x: width / 2, y: HEIGHT / 2, "text-anchor": "middle",
      fill: "currentColor", "font-size": 13 }, "No data yet"));
  } else {
    const integers = xs.every(Number.isInteger);
    const xTicks = niceTicks(...extent(xs), Math.max(2, Math.floor(width / 80)), integers);
    const yTicks = niceTicks(...extent(ys), 4);
    const plotW = width - MARGIN.left - MARGIN.right;
    const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
    const x = { ...xTicks, scale: (v) => MARGIN.left + ((v - xTicks.low) / (xTicks.high - xTicks.low)) * plotW };
    const y = { ...yTicks, scale: (v) => MARGIN.top + (1 - (v - yTicks.low) / (yTicks.high - yTicks.low)) * plotH };
    drawAxes(group, x, y, width, HEIGHT, spec);
    drawSeries(group, series, x, y);
  }
  svgNode.replaceChildren(svg("title", {}, spec.title || "Chart"), group);
  renderLegend(legend, series);
  renderTable(table, spec, series);
}

function build(container) {
  const figure = html("figure", { class: "chart" }, undefined, { position: "relative", minWidth: "0" });
  const heading = html("figcaption", { class: "chart-title", "aria-hidden": "true" }, undefined, {
    fontWeight: "600",
  });
  const legend = html("ul", { class: "chart-legend" }, undefined, {
    listStyle: "none", margin: "0", padding: "0", fontSize: ".85em",
  });
  const svgNode = svg("svg", { role: "img", width: "100%", preserveAspectRatio: "xMidYMid meet" });
  Object.assign(svgNode.style, { display: "block", maxWidth: "100%", height: "auto", overflow: "visible" });
  const table = html("table", { class: "chart-data" }, undefined, HIDDEN);
  figure.append(heading, legend, svgNode, table);
  container.append(figure);
  figure._chart = { heading, legend, svgNode, table, spec: null, width: 0 };
  // Redraw when the page's width changes (a phone turned sideways), not on every tick.
  if (typeof ResizeObserver === "function") {
    const observer = new ResizeObserver(() => {
      const width = Math.round(figure.clientWidth);
      if (figure._chart.spec && width && width !== figure._chart.width) {
        figure._chart.width = width;
        draw(figure);
      }
    });
    observer.observe(figure);
  }
  return figure;
}

/**
 * Draw (or redraw in place) a line chart in `container`.
 * spec: {title, xLabel, yLabel, series: [{name, points: [[x, y], ...]}]}. Returns the <figure>.
 */
export function lineChart(container, spec) {
  let figure = container.querySelector(":scope > figure.chart");
  if (!figure || !figure._chart) figure = build(container);
  figure._chart.spec = spec;
  figure._chart.heading.textContent = spec.title || "";
  figure._chart.heading.hidden = !spec.title;
  draw(figure);
  figure._chart.width = Math.round(figure.clientWidth);
  return figure;
}
