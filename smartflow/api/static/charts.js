// Session charts (uPlot): spot and forward, PCR, ATM IV, straddle over the session; the IV smile
// and GEX by strike at the latest bar close; the P&L curve.
import uPlot from "./vendor/uplot/uPlot.esm.js";

const IST = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Asia/Kolkata");
const AXIS = { stroke: "#7d8a96", grid: { stroke: "#26313b" }, ticks: { stroke: "#26313b" } };
// Rupee magnitudes in crore and lakh; index levels and ratios as they are.
const short = (v) => {
  const a = Math.abs(v);
  if (a >= 1e7) return (v / 1e7).toFixed(a >= 1e9 ? 0 : 1) + "Cr";
  if (a >= 1e5) return (v / 1e5).toFixed(1) + "L";
  return String(+v.toFixed(4));
};

function make(el, series, opts = {}) {
  const width = Math.max(200, el.clientWidth || 300);
  return new uPlot({
    width,
    height: opts.height || 150,
    tzDate: opts.time === false ? undefined : IST,
    scales: { x: { time: opts.time !== false } },
    axes: [{ ...AXIS }, { ...AXIS, size: 64, values: (u, vals) => vals.map(short) }],
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    series,
  }, series.map(() => []), el);
}

export class Charts {
  constructor() {
    const line = (label, stroke) => ({ label, stroke, width: 1.5 });
    this.spot = make(document.getElementById("ch-spot"),
      [{}, line("spot", "#e6b450"), line("forward", "#59c2ff")]);
    this.pcr = make(document.getElementById("ch-pcr"), [{}, line("PCR", "#d2a6ff")]);
    this.iv = make(document.getElementById("ch-iv"), [{}, line("ATM IV", "#95e6cb")]);
    this.straddle = make(document.getElementById("ch-straddle"), [{}, line("straddle", "#f07178")]);
    this.smile = make(document.getElementById("ch-smile"),
      [{ label: "strike" }, { ...line("IV", "#95e6cb"), points: { show: true, size: 4 } }],
      { time: false });
    this.gex = make(document.getElementById("ch-gex"),
      [{ label: "strike" }, { label: "GEX", stroke: "#59c2ff", fill: "#59c2ff88",
        paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false } }],
      { time: false });
    this.pnl = make(document.getElementById("ch-pnl"),
      [{}, line("gross", "#e6b450"), line("net", "#d2a6ff"), line("realised", "#3fb37f")],
      { height: 170 });
    this.series = [[], [], [], [], [], []];
    this.pnlData = [[], [], [], []];
  }

  // points: [ts_ns, spot, forward, pcr, atm_iv, straddle]
  setSeries(points) {
    this.series = [[], [], [], [], [], []];
    for (const p of points) this._push(p);
    this._drawSeries();
  }

  addPoint(p) {
    this._push(p);
    this._drawSeries();
  }

  _push(p) {
    const s = this.series;
    s[0].push(p[0] / 1e9);
    s[1].push(p[1]); s[2].push(p[2]); s[3].push(p[3]);
    s[4].push(p[4] === null ? null : p[4] * 100); s[5].push(p[5]);
  }

  _drawSeries() {
    const [x, spot, fwd, pcr, iv, straddle] = this.series;
    this.spot.setData([x, spot, fwd]);
    this.pcr.setData([x, pcr]);
    this.iv.setData([x, iv]);
    this.straddle.setData([x, straddle]);
  }

  setSummary(summary) {
    const xs = [], iv = [], gex = [];
    for (const s of summary.strikes) {
      xs.push(s.strike);
      iv.push(s.iv === null ? null : s.iv * 100);
      gex.push(s.gex);
    }
    this.smile.setData([xs, iv]);
    this.gex.setData([xs, gex]);
  }

  // points: [ts_ns, realised, unrealised, charges]
  setPnl(points) {
    this.pnlData = [[], [], [], []];
    for (const p of points) this._pushPnl(p);
    this.pnl.setData(this.pnlData);
  }

  addPnl(p) {
    this._pushPnl(p);
    this.pnl.setData(this.pnlData);
  }

  _pushPnl(p) {
    this.pnlData[0].push(p[0] / 1e9);
    this.pnlData[1].push(p[1] + p[2]);
    this.pnlData[2].push(p[1] + p[2] - (p[3] || 0));
    this.pnlData[3].push(p[1]);
  }

  resize() {
    for (const c of [this.spot, this.pcr, this.iv, this.straddle, this.smile, this.gex, this.pnl]) {
      const w = c.root.parentElement.clientWidth;
      if (w > 0 && Math.abs(w - c.width) > 4) c.setSize({ width: w, height: c.height });
    }
  }
}
