// The Truc console: plain JavaScript, no framework, no build step.
"use strict";
(() => {
  const L = {
    vi: {
      "nav.overview": "Tổng quan", "nav.agencies": "Cơ quan", "nav.documents": "Văn bản", "nav.dead": "Thư chết",
      "nav.stats": "Chỉ số", "nav.audit": "Kiểm toán", "overview.lasthour": "Một giờ qua", "overview.alerts": "Cảnh báo đang bật",
      "col.code": "Mã", "col.name": "Tên", "col.state": "Trạng thái", "col.queued": "Đang chờ", "col.inflight": "Đang gửi",
      "col.dead": "Thư chết", "col.oldest": "Chờ lâu nhất", "col.lastconn": "Kết nối gần nhất", "col.late": "Xác nhận trễ hôm nay",
      "col.actions": "Thao tác", "queue.title": "Hàng đợi của", "col.delivery": "Mã chuyển", "col.from": "Nơi gửi",
      "col.docid": "Văn bản", "col.priority": "Độ khẩn", "col.enqueued": "Vào hàng", "col.attempts": "Số lần",
      "doc.id": "Mã văn bản", "doc.find": "Tìm", "doc.agency": "Cơ quan", "doc.role": "là", "doc.any": "gửi hoặc nhận",
      "doc.sender": "nơi gửi", "doc.recipient": "nơi nhận", "doc.date": "Ngày", "doc.search": "Tìm kiếm",
      "col.time": "Thời gian", "col.recipients": "Nơi nhận", "col.recipient": "Nơi nhận", "col.transport": "Chuyển phát",
      "col.status": "Trạng thái xử lý", "col.deadline": "Hạn xác nhận", "doc.timeline": "Diễn biến", "col.agency": "Cơ quan",
      "col.reason": "Lý do", "dead.empty": "Không có thư chết.", "stats.from": "Từ", "stats.to": "Đến", "stats.by": "Theo",
      "stats.day": "ngày", "stats.month": "tháng", "stats.show": "Xem", "stats.csv": "Tải CSV",
      "stats.note": "Đúng hạn: xác nhận (01/03) trong ngày, chậm nhất là ngày làm việc tiếp theo (theo lịch ngày làm việc của trục). Quá hạn: bản khẩn, thượng khẩn, hỏa tốc được nhận sau thời hạn chuyển, tính vào ngày nhận.",
      "col.period": "Kỳ", "col.sent": "Gửi", "col.received": "Nhận", "col.refused": "Từ chối", "col.ontime": "Đúng hạn",
      "col.latec": "Trễ hạn", "col.bytessent": "Byte gửi", "col.bytesrecv": "Byte nhận",
      "col.odurgent": "Khẩn quá hạn", "col.odveryurgent": "Thượng khẩn quá hạn", "col.odexpress": "Hỏa tốc quá hạn", "col.event": "Sự kiện",
      "audit.note": "Kiểm tra ngay trong trình duyệt (WebCrypto): chứng minh bao hàm của từng biên nhận theo đầu cây đã ký, và chữ ký Ed25519 của đầu cây theo receipts.pub.",
      "audit.verify": "Kiểm tra biên nhận", "audit.leaf": "Vị trí lá", "audit.inclusion": "Chứng minh bao hàm",
      "audit.grew": "Sổ chỉ tăng thêm", "audit.save": "Lưu đầu cây hiện tại", "audit.check": "So với đầu cây đã lưu",
      "confirm.reason": "Lý do", "confirm.cancel": "Hủy", "confirm.ok": "Xác nhận",
      "act.suspend": "Tạm dừng", "act.resume": "Khôi phục", "act.retire": "Giải thể", "act.queue": "Hàng đợi",
      "act.redrive": "Gửi lại", "act.purge": "Xóa", "ready": "Sẵn sàng", "notready": "Không nhận ghi",
      "card.agencies": "Cơ quan", "card.connected": "Đang kết nối", "card.queued": "Đang chờ", "card.dead": "Thư chết",
      "card.disk": "Đĩa trống", "card.store": "Kho dữ liệu", "card.rate": "Văn bản/phút", "none": "Không có",
      "sig.ok": "Chữ ký đầu cây hợp lệ", "sig.bad": "Chữ ký đầu cây KHÔNG hợp lệ", "incl.ok": "hợp lệ", "incl.bad": "SAI",
      "tampered": "Phát hiện biên nhận bị sửa đổi", "allok": "Mọi kiểm tra đều đạt", "successor": "Cơ quan kế nhiệm",
      "grew.ok": "Sổ chỉ tăng thêm: nhất quán", "grew.bad": "KHÔNG nhất quán", "saved": "Đầu cây đã lưu", "nosaved": "Chưa lưu đầu cây nào",
    },
    en: {
      "nav.overview": "Overview", "nav.agencies": "Agencies", "nav.documents": "Documents", "nav.dead": "Dead letters",
      "nav.stats": "Indicators", "nav.audit": "Audit", "overview.lasthour": "Last hour", "overview.alerts": "Alerts firing",
      "col.code": "Code", "col.name": "Name", "col.state": "State", "col.queued": "Queued", "col.inflight": "In flight",
      "col.dead": "Dead", "col.oldest": "Oldest waiting", "col.lastconn": "Last connection", "col.late": "Late today",
      "col.actions": "Actions", "queue.title": "Queue of", "col.delivery": "Delivery id", "col.from": "From",
      "col.docid": "Document", "col.priority": "Priority", "col.enqueued": "Enqueued", "col.attempts": "Attempts",
      "doc.id": "Document id", "doc.find": "Find", "doc.agency": "Agency", "doc.role": "as", "doc.any": "sender or recipient",
      "doc.sender": "sender", "doc.recipient": "recipient", "doc.date": "Date", "doc.search": "Search",
      "col.time": "Time", "col.recipients": "Recipients", "col.recipient": "Recipient", "col.transport": "Transport",
      "col.status": "Status", "col.deadline": "Confirm by", "doc.timeline": "Timeline", "col.agency": "Agency",
      "col.reason": "Reason", "dead.empty": "No dead letters.", "stats.from": "From", "stats.to": "To", "stats.by": "By",
      "stats.day": "day", "stats.month": "month", "stats.show": "Show", "stats.csv": "Download CSV",
      "stats.note": "On time: receipt confirmed (01/03) the same day, at the latest the next working day (the axis's working-day calendar). Overdue: urgent, very urgent and express copies received after their delivery deadline, counted on the day received.",
      "col.period": "Period", "col.sent": "Sent", "col.received": "Received", "col.refused": "Refused", "col.ontime": "On time",
      "col.latec": "Late", "col.bytessent": "Bytes sent", "col.bytesrecv": "Bytes received",
      "col.odurgent": "Overdue khẩn", "col.odveryurgent": "Overdue thượng khẩn", "col.odexpress": "Overdue hỏa tốc", "col.event": "Event",
      "audit.note": "Checked in this browser (WebCrypto): each receipt's inclusion proof against the signed tree head, and the head's Ed25519 signature against receipts.pub.",
      "audit.verify": "Verify receipts", "audit.leaf": "Leaf index", "audit.inclusion": "Inclusion proof",
      "audit.grew": "Log only grew", "audit.save": "Save the current tree head", "audit.check": "Check against the saved head",
      "confirm.reason": "Reason", "confirm.cancel": "Cancel", "confirm.ok": "Confirm",
      "act.suspend": "Suspend", "act.resume": "Resume", "act.retire": "Retire", "act.queue": "Queue",
      "act.redrive": "Redrive", "act.purge": "Purge", "ready": "Ready", "notready": "Cannot commit",
      "card.agencies": "Agencies", "card.connected": "Connected", "card.queued": "Queued", "card.dead": "Dead letters",
      "card.disk": "Disk free", "card.store": "Store", "card.rate": "Documents/min", "none": "None",
      "sig.ok": "Tree head signature valid", "sig.bad": "Tree head signature INVALID", "incl.ok": "valid", "incl.bad": "FAILED",
      "tampered": "A tampered receipt was detected", "allok": "Every check passed", "successor": "Successor agency",
      "grew.ok": "The log only grew: consistent", "grew.bad": "NOT consistent", "saved": "Saved tree head", "nosaved": "No tree head saved yet",
    },
  };
  let lang = localStorage.getItem("truc.lang") || "vi";
  const t = (k) => (L[lang] && L[lang][k]) || k;
  const $ = (s) => document.querySelector(s);
  let session = null;

  const el = (tag, props, ...kids) => {
    const e = document.createElement(tag);
    Object.entries(props || {}).forEach(([k, v]) => {
      if (k === "class") e.className = v; else if (k.startsWith("data-") || k === "id") e.setAttribute(k, v); else e[k] = v;
    });
    kids.flat().forEach((c) => e.append(c instanceof Node ? c : String(c ?? "")));
    return e;
  };
  const pad = (n) => String(n).padStart(2, "0");
  const time = (ms) => {
    if (!ms) return "—";
    const d = new Date(ms + session.utc_offset_minutes * 60000);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  };
  const today = () => time(Date.now()).slice(0, 10);
  const bytes = (b) => { if (b == null) return "—"; const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; while (b >= 1024 && i < 4) { b /= 1024; i++; } return `${b.toFixed(1)} ${u[i]}`; };
  const age = (ms) => !ms ? "—" : ms < 60000 ? `${Math.round(ms / 1000)} s` : ms < 3600000 ? `${Math.round(ms / 60000)} min` : `${(ms / 3600000).toFixed(1)} h`;
  const say = (text, error) => { const m = $("#message"); m.textContent = text; m.className = "message" + (error ? " error" : ""); };

  const api = async (path) => {
    const r = await fetch(path, { credentials: "same-origin" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  };
  const act = async (path, data) => {
    const r = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": session.csrf },
      body: JSON.stringify(data),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  };
  // The confirmation step of every action.
  const confirmStep = (text, extra) => new Promise((resolve) => {
    const d = $("#confirm");
    $("#confirm-text").textContent = text;
    $("#confirm-reason").value = "";
    $("#confirm-extra-label").classList.toggle("hidden", !extra);
    if (extra) { $("#confirm-extra-name").textContent = extra; $("#confirm-extra").value = ""; }
    d.onclose = () => resolve(d.returnValue === "ok" ? { reason: $("#confirm-reason").value, extra: $("#confirm-extra").value } : null);
    d.returnValue = "";
    d.showModal();
  });

  const applyLang = () => {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
    $("#lang").textContent = lang === "vi" ? "EN" : "VI";
  };

  const pages = {
    async overview() {
      const o = await api("/api/overview");
      const s = o.samples || [];
      let rate = 0;
      if (s.length >= 2) { const a = s[s.length - 2], b = s[s.length - 1]; rate = Math.round((b.accepted - a.accepted) * 60000 / Math.max(1, b.t - a.t)); }
      const card = (k, v, cls) => el("div", { class: "card" }, el("div", { class: "v " + (cls || "") }, v), el("div", { class: "k" }, t(k)));
      $("#overview-cards").replaceChildren(
        card(o.ready ? "ready" : "notready", o.ready ? "●" : "✘", o.ready ? "ok" : "bad"),
        card("card.agencies", o.agencies), card("card.connected", o.connected), card("card.queued", o.queued),
        card("card.dead", o.dead_letters, o.dead_letters ? "bad" : ""), card("card.rate", rate),
        card("card.disk", bytes(o.storage.disk_free_bytes)), card("card.store", bytes(o.storage.store_bytes)));
      $("#overview-chart").replaceChildren(lineChart(s.map((p) => p.t), [s.map((p) => p.queued), s.map((p) => p.accepted)], ["#9c1c1c", "#1d5fa8"]));
      const ul = $("#overview-alerts");
      ul.replaceChildren(...(o.alerts.length ? o.alerts.map((a) => el("li", { class: "bad" }, `${a.name}: ${a.detail}`)) : [el("li", { class: "ok" }, t("none"))]));
    },
    async agencies() {
      const r = await api("/api/agencies");
      const tb = $("#agencies-table tbody");
      tb.replaceChildren(...r.agencies.map((a) => {
        const actions = el("td", {});
        actions.append(el("button", { type: "button", class: "show-queue", onclick: () => showQueue(a.code) }, t("act.queue")));
        if (session.role === "operator" && a.state !== "retired") {
          const next = a.state === "active" ? "suspended" : "active";
          actions.append(" ", el("button", {
            type: "button", class: "danger", onclick: async () => {
              const c = await confirmStep(`${t(next === "active" ? "act.resume" : "act.suspend")} ${a.code}?`);
              if (!c) return;
              try { await act("/api/agency/state", { code: a.code, state: next, reason: c.reason }); say(`${a.code}: ${next}`); pages.agencies(); } catch (e) { say(e.message, true); }
            },
          }, t(next === "active" ? "act.resume" : "act.suspend")));
          actions.append(" ", el("button", {
            type: "button", class: "danger", onclick: async () => {
              const c = await confirmStep(`${t("act.retire")} ${a.code}?`, t("successor"));
              if (!c) return;
              try { await act("/api/agency/retire", { code: a.code, successor: c.extra, reason: c.reason }); say(`${a.code}: retired`); pages.agencies(); } catch (e) { say(e.message, true); }
            },
          }, t("act.retire")));
        }
        return el("tr", { "data-code": a.code },
          el("td", {}, a.code), el("td", {}, a.name), el("td", { class: a.state === "active" ? "ok" : "bad" }, a.state),
          el("td", { class: "num queued" }, a.queued), el("td", { class: "num" }, a.in_flight), el("td", { class: "num" }, a.dead_letters),
          el("td", {}, age(a.oldest_age_ms)), el("td", {}, a.connected_streams ? "●" : time(a.last_connected_unix_ms)),
          el("td", { class: "num" }, a.late_today), actions);
      }));
    },
    async documents() {},
    async dead() {
      const r = await api("/api/deadletters");
      $("#dead-empty").classList.toggle("hidden", r.dead_letters.length > 0);
      $("#dead-table tbody").replaceChildren(...r.dead_letters.map((d) => {
        const actions = el("td", {});
        if (session.role === "operator") {
          const run = (what, path) => async () => {
            const c = await confirmStep(`${t(what)} ${d.document_id} → ${d.agency}?`);
            if (!c) return;
            try { const n = await act(path, { agency: d.agency, ids: [d.delivery_id] }); say(`${t(what)}: ${n.count}`); pages.dead(); } catch (e) { say(e.message, true); }
          };
          actions.append(el("button", { type: "button", class: "redrive", onclick: run("act.redrive", "/api/deadletters/redrive") }, t("act.redrive")), " ",
            el("button", { type: "button", class: "danger purge", onclick: run("act.purge", "/api/deadletters/purge") }, t("act.purge")));
        }
        return el("tr", { "data-delivery": d.delivery_id }, el("td", {}, d.agency), el("td", {}, d.delivery_id), el("td", {}, d.from),
          el("td", {}, d.document_id), el("td", { class: "num" }, d.attempts), el("td", {}, d.reason), actions);
      }));
    },
    async stats() {
      if (!$("#stats-from").value) { $("#stats-to").value = today(); $("#stats-from").value = today().slice(0, 8) + "01"; }
      const q = new URLSearchParams({ from: $("#stats-from").value, to: $("#stats-to").value, agency: $("#stats-agency").value.trim(), by: $("#stats-by").value });
      $("#stats-csv").href = "/api/stats.csv?" + q;
      const r = await api("/api/stats?" + q);
      $("#stats-table tbody").replaceChildren(...r.rows.map((s) => el("tr", {}, el("td", {}, s.period), el("td", {}, s.agency || "(hub)"),
        ...[s.sent, s.received, s.refused, s.confirmed_on_time, s.confirmed_late, s.dead_lettered].map((v) => el("td", { class: "num" }, v)),
        el("td", { class: "num" }, bytes(s.bytes_sent)), el("td", { class: "num" }, bytes(s.bytes_received)),
        ...[s.overdue_urgent, s.overdue_very_urgent, s.overdue_express].map((v) => el("td", { class: "num" }, v)))));
      const hub = r.rows.filter((s) => !s.agency || (q.get("agency") && s.agency === q.get("agency")));
      $("#stats-chart").replaceChildren(barChart(hub.map((s) => s.period), [hub.map((s) => s.sent), hub.map((s) => s.received), hub.map((s) => s.confirmed_late)], ["#1d5fa8", "#19733a", "#b3261e"]));
    },
    async audit() { showSaved(); },
  };

  const svg = (tag, attrs, ...kids) => {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
    kids.forEach((k) => e.append(k));
    return e;
  };
  const lineChart = (xs, series, colors) => {
    const W = 900, H = 160, root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
    const max = Math.max(1, ...series.flat());
    series.forEach((ys, k) => {
      const base = k === 1 && ys.length ? ys[0] : 0; // accepted: since the first sample
      const m = k === 1 ? Math.max(1, ...ys.map((y) => y - base)) : max;
      const pts = ys.map((y, i) => `${10 + i * (W - 20) / Math.max(1, ys.length - 1)},${H - 10 - (y - base) * (H - 20) / m}`).join(" ");
      root.append(svg("polyline", { points: pts, fill: "none", stroke: colors[k], "stroke-width": 2 }));
    });
    return root;
  };
  const barChart = (labels, series, colors) => {
    const W = 900, H = 180, root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
    const max = Math.max(1, ...series.flat());
    const gw = (W - 20) / Math.max(1, labels.length), bw = Math.max(2, gw / (series.length + 1));
    labels.forEach((lab, i) => {
      series.forEach((ys, k) => {
        const h = ys[i] * (H - 40) / max;
        root.append(svg("rect", { x: 10 + i * gw + k * bw, y: H - 25 - h, width: bw - 1, height: h, fill: colors[k] }));
      });
      if (labels.length <= 31) root.append(svg("text", { x: 10 + i * gw, y: H - 8, "font-size": 10 }, document.createTextNode(lab.slice(5))));
    });
    return root;
  };

  const showQueue = async (code) => {
    try {
      const r = await api("/api/queue?agency=" + encodeURIComponent(code));
      $("#queue-panel").classList.remove("hidden");
      $("#queue-agency").textContent = code;
      $("#queue-count").textContent = r.items.length;
      $("#queue-table tbody").replaceChildren(...r.items.map((i) => el("tr", {}, el("td", {}, i.delivery_id), el("td", {}, i.from),
        el("td", {}, i.document_id), el("td", {}, i.priority), el("td", {}, time(i.enqueued_at_unix_ms)), el("td", { class: "num" }, i.attempts))));
    } catch (e) { say(e.message, true); }
  };

  const showDocument = async (id) => {
    const d = await api("/api/document?id=" + encodeURIComponent(id));
    $("#doc-detail").classList.remove("hidden");
    $("#doc-title").textContent = `${d.document_id} — ${d.subject}`;
    $("#doc-recipients tbody").replaceChildren(...d.recipients.map((r) => el("tr", { "data-agency": r.agency }, el("td", {}, r.agency),
      el("td", {}, r.state),
      el("td", {}, r.status ? String(r.status).padStart(2, "0") + (r.status_description ? ` (${r.status_description})` : "") : "—"),
      el("td", {}, time(r.confirm_deadline_unix_ms)))));
    $("#doc-timeline").replaceChildren(...d.receipts.map((r) => el("li", { "data-event": r.event },
      `${time(r.time_unix_ms)}  ${r.event}${r.recipient ? " → " + r.recipient : ""}${r.status_code ? " [" + String(r.status_code).padStart(2, "0") + "]" : ""}${r.detail && r.event !== "accepted" ? " — " + r.detail : ""}  (${r.actor})`)));
  };

  const showSaved = () => {
    const saved = JSON.parse(localStorage.getItem("truc.savedHead") || "null");
    $("#audit-saved").textContent = saved ? `${t("saved")}: ${saved.tree_size} @ ${time(saved.time_unix_ms)}` : t("nosaved");
    return saved;
  };

  const auditReceipts = async (id) => {
    const [key, page] = await Promise.all([api("/api/audit/key"), api("/api/audit/receipts?id=" + encodeURIComponent(id))]);
    const res = await TrucVerify.checkPage(key.spki_base64, page);
    $("#audit-head").replaceChildren(el("p", { id: "audit-signature", class: res.signature ? "check-ok ok" : "check-bad bad" },
      `${t(res.signature ? "sig.ok" : "sig.bad")} — tree size ${res.head.size}, root ${TrucVerify.toHex(res.head.root).slice(0, 16)}…, key ${page.tree_head.key_id.slice(0, 16)}…`));
    $("#audit-table").classList.remove("hidden");
    $("#audit-table tbody").replaceChildren(...page.receipts.map((r, i) => {
      const c = res.receipts[i];
      return el("tr", { class: c.ok ? "receipt-ok" : "receipt-bad" }, el("td", {}, i + 1), el("td", {}, r.decoded.event), el("td", {}, time(r.decoded.time_unix_ms)),
        el("td", {}, r.decoded.recipient), el("td", {}, c.index ?? "?"),
        el("td", { class: c.ok ? "check-ok ok" : "check-bad bad" }, c.ok ? t("incl.ok") : `${t("incl.bad")}: ${c.why}`));
    }));
    const all = res.signature && res.receipts.every((c) => c.ok);
    say(all ? t("allok") : t("tampered"), !all);
    $("#audit-head").append(el("p", { id: "audit-verdict", class: all ? "ok" : "bad" }, all ? t("allok") : t("tampered")));
  };

  const route = async () => {
    const name = (location.hash || "#overview").slice(1);
    if (!pages[name]) return;
    document.querySelectorAll(".page").forEach((p) => p.classList.toggle("hidden", p.id !== "page-" + name));
    document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === name));
    try { await pages[name](); document.body.dataset.loaded = name; } catch (e) { say(e.message, true); }
  };

  const init = async () => {
    try { session = await api("/api/session"); } catch (e) { say(e.message, true); return; }
    $("#who").textContent = `${session.principal} (${session.role})`;
    document.body.dataset.role = session.role;
    applyLang();
    $("#lang").addEventListener("click", () => { lang = lang === "vi" ? "en" : "vi"; localStorage.setItem("truc.lang", lang); applyLang(); route(); });
    $("#doc-form").addEventListener("submit", (e) => { e.preventDefault(); showDocument($("#doc-id").value.trim()).catch((x) => say(x.message, true)); });
    $("#doc-search").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const q = new URLSearchParams({ agency: $("#doc-agency").value.trim(), role: $("#doc-role").value, date: $("#doc-date").value });
        const r = await api("/api/documents?" + q);
        $("#doc-results").classList.remove("hidden");
        $("#doc-results tbody").replaceChildren(...r.documents.map((d) => el("tr", {}, el("td", {}, time(d.time_unix_ms)), el("td", {}, d.from),
          el("td", {}, el("a", { href: "#documents", onclick: (ev) => { ev.preventDefault(); showDocument(d.document_id).catch((x) => say(x.message, true)); } }, d.document_id)),
          el("td", {}, (d.recipients || []).join(", ")))));
      } catch (x) { say(x.message, true); }
    });
    $("#stats-form").addEventListener("submit", (e) => { e.preventDefault(); pages.stats().catch((x) => say(x.message, true)); });
    $("#audit-form").addEventListener("submit", (e) => { e.preventDefault(); auditReceipts($("#audit-id").value.trim()).catch((x) => say(x.message, true)); });
    $("#audit-save").addEventListener("click", async () => {
      try {
        const [key, c] = await Promise.all([api("/api/audit/key"), api("/api/audit/consistency")]);
        const ok = await TrucVerify.verifySignature(await TrucVerify.importKey(key.spki_base64), c.head);
        if (!ok) throw new Error(t("sig.bad"));
        const h = TrucVerify.treeHead(TrucVerify.hexToBytes(c.head.tree_head));
        localStorage.setItem("truc.savedHead", JSON.stringify({ ...c.head, tree_size: h.size, time_unix_ms: h.time }));
        showSaved();
      } catch (e) { say(e.message, true); }
    });
    $("#audit-check").addEventListener("click", async () => {
      const out = $("#audit-consistency");
      try {
        const saved = showSaved();
        if (!saved) throw new Error(t("nosaved"));
        const key = await TrucVerify.importKey((await api("/api/audit/key")).spki_base64);
        const c = await api("/api/audit/consistency?old=" + saved.tree_size);
        const oldSig = await TrucVerify.verifySignature(key, saved);
        const newSig = await TrucVerify.verifySignature(key, c.head);
        const a = TrucVerify.treeHead(TrucVerify.hexToBytes(saved.tree_head)), b = TrucVerify.treeHead(TrucVerify.hexToBytes(c.head.tree_head));
        const cons = await TrucVerify.verifyConsistency(a.size, b.size, a.root, b.root, c.proof.map(TrucVerify.hexToBytes));
        const ok = oldSig && newSig && cons;
        out.className = ok ? "check-ok ok" : "check-bad bad";
        out.textContent = `${t(ok ? "grew.ok" : "grew.bad")}: ${a.size} → ${b.size} (signatures ${oldSig && newSig ? "✔" : "✘"}, proof ${cons ? "✔" : "✘"})`;
      } catch (e) { out.className = "check-bad bad"; out.textContent = `${t("grew.bad")}: ${e.message}`; }
    });
    window.addEventListener("hashchange", route);
    await route();
    setInterval(() => { if ((location.hash || "#overview") === "#overview") pages.overview().catch(() => {}); }, 10000);
  };
  document.addEventListener("DOMContentLoaded", init);
})();
