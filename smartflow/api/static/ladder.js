// The chain ladder: one row per strike, CE on the left, PE on the right. Rows are built when the
// strike set changes and otherwise only their cells' text and bar widths are touched.

const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? "" : x.toFixed(d));
const big = (x) => {
  if (x === null || x === undefined) return "";
  const a = Math.abs(x);
  if (a >= 1e7) return (x / 1e7).toFixed(2) + "Cr";
  if (a >= 1e5) return (x / 1e5).toFixed(2) + "L";
  if (a >= 1e3) return (x / 1e3).toFixed(1) + "k";
  return String(x);
};
const signed = (x) => (x > 0 ? "+" + big(x) : big(x));
const SHORT = {
  LONG_BUILD_UP: "LB", SHORT_BUILD_UP: "SB", SHORT_COVERING: "SC", LONG_UNWINDING: "LU",
};

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export class Ladder {
  constructor(tbody) {
    this.tbody = tbody;
    this.key = "";
    this.rows = new Map();
  }

  _build(strikes) {
    this.tbody.textContent = "";
    this.rows.clear();
    const frag = document.createDocumentFragment();
    for (const [k] of strikes) {
      const tr = document.createElement("tr");
      tr.dataset.strike = k;
      const cell = (cls) => {
        const td = document.createElement("td");
        if (cls) td.className = cls;
        tr.appendChild(td);
        return td;
      };
      const r = { tr };
      r.ceBuild = cell("build"); r.ceDelta = cell(); r.ceIv = cell(); r.ceLtp = cell();
      r.ceDoi = cell(); r.ceBar = cell("bar ce");
      r.strike = cell("strike");
      r.peBar = cell("bar pe"); r.peDoi = cell(); r.peLtp = cell(); r.peIv = cell();
      r.peDelta = cell(); r.peBuild = cell("build");
      for (const b of [r.ceBar, r.peBar]) {
        b.appendChild(document.createElement("i"));
        b.appendChild(document.createElement("span"));
      }
      r.strike.textContent = k;
      this.rows.set(k, r);
      frag.appendChild(tr);
    }
    this.tbody.appendChild(frag);
  }

  // chain: the tick's ui.chains[u]; summary: the latest bar's chain summary (or null).
  render(chain, summary) {
    const strikes = chain.strikes;
    const key = strikes.map((s) => s[0]).join(",");
    if (key !== this.key) {
      this._build(strikes);
      this.key = key;
      this.centred = false;
    }
    let maxOi = 1;
    for (const [, ce, pe] of strikes) {
      if (ce) maxOi = Math.max(maxOi, ce[1]);
      if (pe) maxOi = Math.max(maxOi, pe[1]);
    }
    const doi = new Map();
    if (summary) for (const s of summary.strikes) doi.set(s.strike, s);
    const pain = summary?.max_pain?.strike;
    const wallR = summary?.walls?.resistance?.strike;
    const wallS = summary?.walls?.support?.strike;
    for (const [k, ce, pe] of strikes) {
      const r = this.rows.get(k);
      const cls = [k === chain.atm ? "atm" : "", k === pain ? "pain" : "",
        k === wallR ? "wall-r" : "", k === wallS ? "wall-s" : ""].filter(Boolean).join(" ");
      if (r.tr.className !== cls) r.tr.className = cls;
      const d = doi.get(k);
      this._side(r, "ce", ce, d ? d.ce_oi_change : null, maxOi);
      this._side(r, "pe", pe, d ? d.pe_oi_change : null, maxOi);
    }
    // Once per strike window: bring the ATM row to the middle of the panel.
    const atmRow = this.rows.get(chain.atm);
    if (!this.centred && atmRow) {
      this.centred = true;
      const panel = this.tbody.closest(".panel");
      panel.scrollTop = atmRow.tr.offsetTop - panel.clientHeight / 2;
    }
  }

  _side(r, s, v, doi, maxOi) {
    const bar = r[s + "Bar"];
    if (!v) {
      for (const f of ["Build", "Delta", "Iv", "Ltp", "Doi"]) setText(r[s + f], "");
      setText(bar.lastChild, "");
      bar.firstChild.style.width = "0";
      return;
    }
    const [ltp, oi, iv, delta, build, traps] = v;
    setText(r[s + "Ltp"], fmt(ltp));
    setText(r[s + "Iv"], iv === null ? "" : (iv * 100).toFixed(1));
    setText(r[s + "Delta"], fmt(delta, 2));
    const doiEl = r[s + "Doi"];
    setText(doiEl, doi === null || doi === undefined ? "" : signed(doi));
    const dcls = doi > 0 ? "up" : doi < 0 ? "down" : "";
    if (doiEl.className !== dcls) doiEl.className = dcls;
    setText(bar.lastChild, big(oi));
    const w = ((100 * oi) / maxOi).toFixed(1) + "%";
    if (bar.firstChild.style.width !== w) bar.firstChild.style.width = w;
    const badges = (build !== "NONE" ? `<span class="badge b-${build}" title="${build}">${SHORT[build] || build}</span>` : "")
      + traps.map((t) => `<span class="badge b-trap" title="${t}">${t.replace("_TRAP", "").replace("_", " ").toLowerCase()}</span>`).join("");
    const el = r[s + "Build"];
    if (el.dataset.v !== badges) {
      el.dataset.v = badges;
      el.innerHTML = badges;
    }
  }
}
