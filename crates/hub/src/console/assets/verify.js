// Receipt checks in the browser, with WebCrypto only: RFC 9162 inclusion
// and consistency proofs (SHA-256) and the tree head's Ed25519 signature
// against the hub's receipts.pub. Nothing here trusts the server's decoded
// fields: the signed bytes are decoded here.
"use strict";
const TrucVerify = (() => {
  const hexToBytes = (h) => {
    if (typeof h !== "string" || h.length % 2) throw new Error("bad hex");
    const out = new Uint8Array(h.length / 2);
    for (let i = 0; i < out.length; i++) {
      const v = parseInt(h.substr(2 * i, 2), 16);
      if (Number.isNaN(v)) throw new Error("bad hex");
      out[i] = v;
    }
    return out;
  };
  const toHex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
  const sha256 = async (...parts) => {
    let n = 0; parts.forEach((p) => { n += p.length; });
    const buf = new Uint8Array(n); let o = 0;
    parts.forEach((p) => { buf.set(p, o); o += p.length; });
    return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  };
  const leafHash = (data) => sha256(new Uint8Array([0]), data);
  const nodeHash = (l, r) => sha256(new Uint8Array([1]), l, r);
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  // A minimal protobuf reader: field number -> last value (varints as
  // Numbers, which hold every size and time here exactly).
  const decode = (bytes) => {
    const out = {}; let i = 0;
    const varint = () => {
      let v = 0, mul = 1, b;
      do { if (i >= bytes.length) throw new Error("truncated"); b = bytes[i++]; v += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
      return v;
    };
    while (i < bytes.length) {
      const key = varint(); const field = Math.floor(key / 8); const wire = key % 8;
      if (wire === 0) out[field] = varint();
      else if (wire === 2) { const n = varint(); out[field] = bytes.slice(i, i + n); i += n; }
      else if (wire === 1) i += 8;
      else if (wire === 5) i += 4;
      else throw new Error("wire type " + wire);
    }
    return out;
  };
  const treeHead = (bytes) => {
    const f = decode(bytes);
    return { size: f[1] || 0, root: f[2] || new Uint8Array(0), time: f[3] || 0 };
  };

  const importKey = async (spkiBase64) => {
    const der = Uint8Array.from(atob(spkiBase64), (c) => c.charCodeAt(0));
    return crypto.subtle.importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
  };
  const verifySignature = (key, head) =>
    crypto.subtle.verify({ name: "Ed25519" }, key, hexToBytes(head.signature), hexToBytes(head.tree_head));

  // RFC 9162 2.1.3.2
  const verifyInclusion = async (index, size, leaf, proof, root) => {
    if (index >= size) return false;
    let fn = index, sn = size - 1, r = leaf;
    for (const p of proof) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) { while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(r, root);
  };

  // RFC 9162 2.1.4.2
  const verifyConsistency = async (size1, size2, root1, root2, proof) => {
    if (size1 === size2) return proof.length === 0 && equal(root1, root2);
    if (size1 === 0 || size1 > size2 || proof.length === 0 && size1 !== size2) return false;
    let path = proof.slice();
    if ((size1 & (size1 - 1)) === 0) path = [root1].concat(path);
    let fn = size1 - 1, sn = size2 - 1;
    while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    let fr = path[0], sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        fr = await nodeHash(c, fr); sr = await nodeHash(c, sr);
        if (fn % 2 === 0) { while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(fr, root1) && equal(sr, root2);
  };

  // One page of /api/audit/receipts: the head's signature, then each
  // receipt's leaf index (from its own bytes) and inclusion proof.
  const checkPage = async (spkiBase64, page) => {
    const key = await importKey(spkiBase64);
    const signature = await verifySignature(key, page.tree_head);
    const head = treeHead(hexToBytes(page.tree_head.tree_head));
    const receipts = [];
    for (const r of page.receipts) {
      let ok = false, index = null, why = "";
      try {
        const bytes = hexToBytes(r.receipt);
        index = decode(bytes)[1] || 0;
        if (index !== r.leaf_index) why = "leaf index differs from the signed receipt";
        else ok = await verifyInclusion(index, head.size, await leafHash(bytes), r.inclusion_proof.map(hexToBytes), head.root);
        if (!ok && !why) why = "inclusion proof does not reach the signed root";
      } catch (e) { why = String(e.message || e); }
      receipts.push({ ok, index, why });
    }
    return { signature, head, receipts };
  };

  return { hexToBytes, toHex, treeHead, importKey, verifySignature, verifyInclusion, verifyConsistency, checkPage };
})();
