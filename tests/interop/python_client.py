"""Interop client for Truc, written from proto/truc/v1/*.proto alone.

Uses only the stubs grpc_tools.protoc generates from proto/, grpcio and
cryptography, with the certificates `truc pki` writes. Normally started by
tests/interop/run.sh (which builds the PKI, starts trucd and registers the
agencies); to run it by hand against such a hub:

    python -m grpc_tools.protoc -I proto --python_out=STUBS \
        --grpc_python_out=STUBS proto/truc/v1/*.proto
    python tests/interop/python_client.py --hub 127.0.0.1:7443 --pki PKI --stubs STUBS

The channels keep gRPC's default message limits (4 MiB to receive): the
contract promises that such a client gets every delivery, large inline
documents included (they arrive with `payload_separate` and are fetched with
Download).

Prints one line per step and finally `interop: N passed, M failed`; exits
non-zero if any step failed.
"""

import argparse
import hashlib
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

G22, H26, G0901, G0902 = "000.00.00.G22", "000.00.00.H26", "G09.01", "G09.02"
DOC_ID = "000.00.00.G22,2026/11/23,42/PY"
PAYLOAD = "Công văn số 42/PY: về việc kiểm thử liên thông bằng Python.\n".encode() * 50
RPC_TIMEOUT = 20
# Above the hub's 3 MiB inline-delivery limit and gRPC's default 4 MiB
# receive limit, below its 16 MiB inline-send limit.
BIG_PAYLOAD = bytes((i * 31) % 251 for i in range(6 * 1024 * 1024 + 123))


class Client:
    """One agency's mTLS connection to the hub, with its signing key."""

    def __init__(self, pki: Path, hub: str, code: str, pb, rpc):
        d = pki / "agencies" / code
        cert_pem, key_pem = (d / "cert.pem").read_bytes(), (d / "key.pem").read_bytes()
        self.code, self.pb = code, pb
        self.ca = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
        self.cert_der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
        # `truc pki` writes plain PKCS#8, which cryptography and BoringSSL read as they are.
        self.key = serialization.load_pem_private_key(key_pem, password=None)
        creds = grpc.ssl_channel_credentials(
            root_certificates=(d / "ca.pem").read_bytes(), private_key=key_pem, certificate_chain=cert_pem)
        # gRPC's default message limits: no max_receive_message_length.
        self.channel = grpc.secure_channel(hub, creds)
        self.axis = rpc.AxisStub(self.channel)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(hashes.SHA256()))  # ASN.1 DER
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)  # raw 64 bytes
        raise TypeError(f"unsupported key type {type(self.key).__name__}")

    def document(self, to, doc_id=DOC_ID, payload=PAYLOAD, sender=None):
        header = self.pb.DocumentHeader(
            to=to, document_id=doc_id, subject="Về việc thử nghiệm liên thông văn bản điện tử",
            document_type="Công văn", priority=self.pb.PRIORITY_URGENT,
            signed_at_unix_ms=int(time.time() * 1000), payload_sha256=hashlib.sha256(payload).digest(),
            payload_size=len(payload), content_type="text/plain", file_name="42-PY.txt",
            **{"from": sender or self.code})  # `from` is a Python keyword
        header_bytes = header.SerializeToString()  # serialize once, sign and send these bytes
        return self.pb.SignedDocument(header=header_bytes, signature=self.sign(header_bytes),
                                      signer_chain=[self.cert_der], payload=payload)

    def send(self, doc):
        return self.axis.Send(self.pb.SendRequest(document=doc), timeout=RPC_TIMEOUT)

    def download(self, delivery) -> bytes:
        """The payload of a `payload_separate` delivery, by Download."""
        data = bytearray()
        req = self.pb.DownloadRequest(hub_document_id=delivery.hub_document_id, offset=0,
                                      delivery_id=delivery.delivery_id)
        for chunk in self.axis.Download(req, timeout=RPC_TIMEOUT):
            assert chunk.offset == len(data), f"chunk at {chunk.offset}, expected {len(data)}"
            data += chunk.data
        return bytes(data)

    def receive_all(self):
        """Fetch what is waiting (follow=False), verify and ack each delivery;
        payloads that do not travel inline are downloaded first."""
        got = []
        stream = self.axis.Receive(self.pb.ReceiveRequest(max_in_flight=4, follow=False), timeout=RPC_TIMEOUT)
        for delivery in stream:
            if delivery.payload_separate:
                assert not delivery.document.payload, "payload_separate with an inline payload"
                delivery.document.payload = self.download(delivery)
            header = verify_document(self.pb, delivery.document, self.ca)
            got.append((header, delivery))
            ack = self.axis.Ack(self.pb.AckRequest(delivery_ids=[delivery.delivery_id]), timeout=RPC_TIMEOUT)
            assert ack.acknowledged == 1, f"ack of {delivery.delivery_id}: acknowledged={ack.acknowledged}"
        return got


def verify_document(pb, doc, ca):
    """Check a received SignedDocument like any recipient should; return its header."""
    signer = x509.load_der_x509_certificate(doc.signer_chain[0])
    signer.verify_directly_issued_by(ca)
    key = signer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(doc.signature, doc.header, ec.ECDSA(hashes.SHA256()))
    else:
        key.verify(doc.signature, doc.header)
    header = pb.DocumentHeader.FromString(doc.header)
    sender = getattr(header, "from")
    uris = signer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == [f"urn:truc:agency:{sender}"], f"signer SAN {uris} vs from {sender}"
    assert hashlib.sha256(doc.payload).digest() == header.payload_sha256, "payload digest mismatch"
    assert len(doc.payload) == header.payload_size, "payload size mismatch"
    return header


def inclusion_root(leaf_index: int, tree_size: int, leaf_hash: bytes, proof) -> bytes:
    """RFC 9162 §2.1.3.2: the root an inclusion proof leads to (raises if malformed)."""
    node = lambda l, r: hashlib.sha256(b"\x01" + l + r).digest()
    if leaf_index >= tree_size:
        raise ValueError(f"leaf index {leaf_index} >= tree size {tree_size}")
    fn, sn, r = leaf_index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ValueError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("inclusion proof too short")
    return r


def consistency_ok(m: int, n: int, old_root: bytes, new_root: bytes, proof) -> bool:
    """RFC 9162 §2.1.4.2: whether `proof` shows the tree of n leaves extends that of m."""
    node = lambda l, r: hashlib.sha256(b"\x01" + l + r).digest()
    proof = list(proof)
    if m == n:
        return not proof and old_root == new_root
    if m == 0 or m > n or not proof:
        return False
    if m & (m - 1) == 0:
        proof = [old_root] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


def verify_receipt(pb, proven, hub_key, header_bytes):
    """Check a ProvenReceipt offline with the hub's key; return (Receipt, TreeHead)."""
    sth = proven.tree_head
    hub_key.verify(sth.signature, sth.tree_head)  # Ed25519, raises InvalidSignature
    spki = hub_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert sth.key_id == hashlib.sha256(spki).digest(), "tree head key_id is not SHA-256(receipts.pub SPKI)"
    head = pb.TreeHead.FromString(sth.tree_head)
    receipt = pb.Receipt.FromString(proven.receipt)
    # The leaf index and tree size, as the ProvenReceipt states them; they
    # must be the signed ones (Receipt.index, TreeHead.tree_size).
    assert (proven.leaf_index, proven.tree_size) == (receipt.index, head.tree_size), \
        f"leaf_index/tree_size {proven.leaf_index}/{proven.tree_size} vs signed {receipt.index}/{head.tree_size}"
    leaf = hashlib.sha256(b"\x00" + proven.receipt).digest()
    root = inclusion_root(proven.leaf_index, proven.tree_size, leaf, list(proven.inclusion_proof))
    assert root == head.root_hash, f"inclusion proof leads to {root.hex()}, tree head says {head.root_hash.hex()}"
    assert receipt.event == pb.RECEIPT_EVENT_ACCEPTED, f"receipt event {receipt.event}"
    assert receipt.header_sha256 == hashlib.sha256(header_bytes).digest(), "receipt header_sha256"
    return receipt, head


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hub", required=True, help="host:port of trucd")
    ap.add_argument("--pki", required=True, type=Path, help="directory made by `truc pki init`")
    ap.add_argument("--stubs", required=True, help="directory with the protoc-generated truc/v1 stubs")
    ap.add_argument("--expect-dir", type=Path, help="write the attachments sent last here, for run.sh to compare")
    args = ap.parse_args()
    sys.path.insert(0, args.stubs)
    from truc.v1 import axis_pb2, axis_pb2_grpc as rpc, document_pb2, receipt_pb2  # generated from proto/
    from truc.v1 import audit_pb2, audit_pb2_grpc

    pb = SimpleNamespace(**{k: getattr(m, k) for m in (document_pb2, receipt_pb2, axis_pb2, audit_pb2)
                            for k in dir(m) if not k.startswith("_")})  # one namespace for the messages

    hub_key = serialization.load_pem_public_key((args.pki / "hub" / "receipts.pub").read_bytes())
    g22, h26, g0901 = (Client(args.pki, args.hub, c, pb, rpc) for c in (G22, H26, G0901))
    doc = g22.document([H26, G0901])
    first = {}

    def send():
        resp = g22.send(doc)
        assert resp.hub_document_id > 0 and not resp.duplicate, f"response {resp}"
        receipt, head = verify_receipt(pb, resp.receipt, hub_key, doc.header)
        assert (getattr(receipt, "from"), receipt.document_id, receipt.hub_document_id) == \
            (G22, DOC_ID, resp.hub_document_id), f"receipt {receipt}"
        first.update(id=resp.hub_document_id, receipt=resp.receipt.receipt)
        return f"hub_document_id={resp.hub_document_id}, leaf {receipt.index} of {head.tree_size} verified"

    def duplicate():
        resp = g22.send(doc)
        assert resp.duplicate, "duplicate not set on the retried Send"
        assert resp.hub_document_id == first["id"], f"hub_document_id {resp.hub_document_id} != {first['id']}"
        receipt, _ = verify_receipt(pb, resp.receipt, hub_key, doc.header)
        assert resp.receipt.receipt == first["receipt"], "retry returned a different receipt"
        return f"duplicate=True, same id, original receipt (leaf {receipt.index})"

    def spoof():
        try:
            resp = g22.send(g22.document([G0901], doc_id="000.00.00.H26,2026/11/23,1/SPOOF", sender=H26))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
            return f"PERMISSION_DENIED ({e.details()})"
        raise AssertionError(f"spoofed send was accepted: hub_document_id={resp.hub_document_id}")

    def receive(client):
        def step():
            got = client.receive_all()
            assert len(got) == 1, f"{len(got)} deliveries, expected 1"
            header, delivery = got[0]
            assert delivery.document.payload == PAYLOAD and delivery.document.header == doc.header
            assert header.document_id == DOC_ID and delivery.hub_document_id == first.get("id")
            assert client.receive_all() == [], "inbox not empty after ack"
            return f"1 document, signature and digest verified, acked (delivery {delivery.delivery_id})"
        return step

    def ed25519_send():
        g0902 = Client(args.pki, args.hub, G0902, pb, rpc)
        payload = "Báo cáo ký bằng Ed25519.".encode()
        d = g0902.document([G22], doc_id="G09.02,2026/11/23,7/BC", payload=payload)
        resp = g0902.send(d)
        receipt, head = verify_receipt(pb, resp.receipt, hub_key, d.header)
        got = g22.receive_all()
        assert [g[1].document.payload for g in got] == [payload], f"G22 received {len(got)} documents"
        return (f"hub_document_id={resp.hub_document_id}, leaf {receipt.index} of {head.tree_size} "
                f"({len(resp.receipt.inclusion_proof)}-hash proof) verified, received and verified by {G22}")

    def big_inline():
        # Sent inline (under the 16 MiB inline limit), it is above both the
        # 3 MiB inline-delivery limit and this client's 4 MiB receive limit:
        # it must arrive with payload_separate and come by Download.
        d = g22.document([H26], doc_id="000.00.00.G22,2026/11/23,43/PY", payload=BIG_PAYLOAD)
        resp = g22.send(d)
        receipt, head = verify_receipt(pb, resp.receipt, hub_key, d.header)
        got = h26.receive_all()  # downloads, checks size and SHA-256 against the signed header, acks
        assert len(got) == 1, f"{len(got)} deliveries, expected 1"
        header, delivery = got[0]
        assert delivery.payload_separate, "a 6 MiB inline document came inline"
        assert delivery.document.payload == BIG_PAYLOAD and header.document_id == d_id(d)
        return (f"{len(BIG_PAYLOAD)} bytes sent inline, leaf {receipt.index} of {head.tree_size}; "
                f"received with payload_separate and downloaded with default message limits")

    def d_id(d):
        return pb.DocumentHeader.FromString(d.header).document_id

    # Three attachments and the full edXML model, from proto/ alone: the
    # payload is the files one after another, the manifest in the signed
    # header gives each its range and SHA-256. `truc inbox` (run.sh) then
    # receives it as H26 and checks every attachment before it acks.
    parts = [
        ("cong-van-44.pdf", "application/pdf", "Công văn số 44/PY",
         b"%PDF-1.4\n" + "Công văn số 44/PY về kết nối liên thông".encode() + b"\n%%EOF\n"),
        ("Phụ lục I.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "Phụ lục I: danh sách đơn vị", b"PK\x03\x04" + bytes(range(256)) * 40),
        ("bang-so-lieu.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "Bảng số liệu quý IV", b"PK\x03\x04" + bytes((i * 7) % 256 for i in range(5000))),
    ]

    def three_attachments_header(doc_id, digests):
        atts, offset = [], 0
        for i, ((name, media_type, description, data), digest) in enumerate(zip(parts, digests)):
            atts.append(pb.Attachment(content_id=f"cid:py-{i + 1}", name=name, description=description,
                                      media_type=media_type, offset=offset, size=len(data), sha256=digest))
            offset += len(data)
        payload = b"".join(p[3] for p in parts)
        return pb.DocumentHeader(
            to=[H26], document_id=doc_id, subject="Về việc gửi kèm phụ lục (ba tệp)",
            code_number="44", code_notation="PY", document_type="Công văn", document_type_code=1,
            priority=pb.PRIORITY_VERY_URGENT, promulgation_date="2026/11/23", promulgation_place="Hà Nội",
            signer=pb.SignerInfo(competence="KT. BỘ TRƯỞNG", position="THỨ TRƯỞNG", full_name="Nguyễn Văn A"),
            content="Tóm tắt: đề nghị cập nhật danh sách đơn vị.", to_places=["Như trên;", "Lưu: VT."],
            response_for=[pb.ResponseFor(organ_id=H26, code="12/UBND", promulgation_date="2026/11/01",
                                         document_id="000.00.00.H26,2026/11/01,12/UBND")],
            steering_type=1, due_date_unix_ms=int(time.time() * 1000) + 7 * 86_400_000,
            sender=pb.Organization(organ_id=G22, organ_name="Văn phòng Chính phủ", email="vanthu@chinhphu.vn"),
            recipients=[pb.Organization(organ_id=H26, organ_name="UBND Thành phố Hà Nội")],
            other_info=pb.OtherInfo(sphere_of_promulgation="Liên thông", page_amount=3,
                                    appendixes=["Phụ lục I", "Bảng số liệu"]),
            business_staff=pb.StaffInfo(department="Văn thư", staff="Trần B", staff_id="VT-1"),
            attachments=atts, signed_at_unix_ms=int(time.time() * 1000),
            payload_sha256=hashlib.sha256(payload).digest(), payload_size=len(payload),
            **{"from": G22}), payload

    def signed(header, payload):
        header_bytes = header.SerializeToString()
        return pb.SignedDocument(header=header_bytes, signature=g22.sign(header_bytes),
                                 signer_chain=[g22.cert_der], payload=payload)

    def lying_manifest():
        digests = [hashlib.sha256(p[3]).digest() for p in parts]
        digests[1] = hashlib.sha256(b"other bytes").digest()
        header, payload = three_attachments_header("000.00.00.G22,2026/11/23,45/PY", digests)
        try:
            g22.send(signed(header, payload))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.code()
            assert 'attachment 2 ("Phụ lục I.docx"' in e.details(), e.details()
            return f"INVALID_ARGUMENT ({e.details()})"
        raise AssertionError("a manifest whose second digest is wrong was accepted")

    def three_attachments():
        header, payload = three_attachments_header("000.00.00.G22,2026/11/23,44/PY",
                                                   [hashlib.sha256(p[3]).digest() for p in parts])
        resp = g22.send(signed(header, payload))
        assert not resp.duplicate, f"response {resp}"
        if args.expect_dir:
            args.expect_dir.mkdir(parents=True, exist_ok=True)
            for name, _, _, data in parts:
                (args.expect_dir / name).write_bytes(data)
        return (f"hub_document_id={resp.hub_document_id}: {len(parts)} attachments, {len(payload)} bytes, "
                f"left for `truc inbox` as H26")

    def recipients_indexed():
        # H26 finds the acceptance of a document sent to it through the
        # structured recipients of the ACCEPTED receipt.
        audit = audit_pb2_grpc.AuditStub(h26.channel)
        resp = audit.ListReceipts(pb.ListReceiptsRequest(agency=H26, page_size=1000), timeout=RPC_TIMEOUT)
        head = pb.TreeHead.FromString(resp.tree_head.tree_head)
        hub_key.verify(resp.tree_head.signature, resp.tree_head.tree_head)
        accepted = []
        for proven in resp.receipts:
            r = pb.Receipt.FromString(proven.receipt)
            assert (proven.leaf_index, proven.tree_size) == (r.index, head.tree_size)
            leaf = hashlib.sha256(b"\x00" + proven.receipt).digest()
            assert inclusion_root(proven.leaf_index, proven.tree_size, leaf, proven.inclusion_proof) == head.root_hash
            if r.event == pb.RECEIPT_EVENT_ACCEPTED and getattr(r, "from") == G22:
                accepted.append((r.document_id, list(r.recipients)))
        assert (DOC_ID, [H26, G0901]) in accepted, f"ACCEPTED receipts from G22 seen by H26: {accepted}"
        return f"{len(resp.receipts)} receipts of H26, {len(accepted)} acceptances of documents sent to it"

    def tree_heads():
        # An operator lists the sizes that have signed heads, checks each
        # signature and a consistency proof from the first to the last.
        d = args.pki / "operators" / "ops"
        creds = grpc.ssl_channel_credentials(root_certificates=(d / "ca.pem").read_bytes(),
                                             private_key=(d / "key.pem").read_bytes(),
                                             certificate_chain=(d / "cert.pem").read_bytes())
        audit = audit_pb2_grpc.AuditStub(grpc.secure_channel(args.hub, creds))
        heads, start = [], 0
        while True:
            page = audit.ListTreeHeads(pb.ListTreeHeadsRequest(from_size=start, limit=2), timeout=RPC_TIMEOUT)
            heads += page.tree_heads
            if not page.next_from_size:
                break
            start = page.next_from_size
        decoded = []
        for sth in heads:
            hub_key.verify(sth.signature, sth.tree_head)
            decoded.append(pb.TreeHead.FromString(sth.tree_head))
        sizes = [h.tree_size for h in decoded]
        assert sizes == sorted(set(sizes)) and sizes, f"sizes {sizes}"
        latest = audit.GetTreeHead(pb.GetTreeHeadRequest(tree_size=0), timeout=RPC_TIMEOUT)
        assert latest == heads[-1], "the latest head is not the last listed"
        assert audit.GetTreeHead(pb.GetTreeHeadRequest(tree_size=sizes[0]), timeout=RPC_TIMEOUT) == heads[0]
        first, last = decoded[0], decoded[-1]
        proof = audit.GetConsistencyProof(pb.GetConsistencyProofRequest(old_size=first.tree_size,
                                                                        new_size=last.tree_size),
                                          timeout=RPC_TIMEOUT).proof
        assert consistency_ok(first.tree_size, last.tree_size, first.root_hash, last.root_hash, proof), \
            "consistency proof does not verify"
        return f"{len(heads)} signed heads (sizes {sizes[0]}..{sizes[-1]}), consistency {first.tree_size}→{last.tree_size} verified"

    steps = [("send as G22 → H26, G09.01", send), ("resend is a duplicate", duplicate),
             ("spoofed from=H26 refused", spoof), ("receive as H26", receive(h26)),
             ("receive as G09.01", receive(g0901)), ("Ed25519 signer G09.02 → G22", ed25519_send),
             ("6 MiB inline G22 → H26, received with default limits", big_inline),
             ("H26 lists the receipts of documents sent to it", recipients_indexed),
             ("signed tree heads listed and consistent", tree_heads),
             ("a manifest with a wrong digest refused, naming the attachment", lying_manifest),
             ("three attachments and the full model G22 → H26", three_attachments)]
    passed = failed = 0
    for i, (name, fn) in enumerate(steps, 1):
        try:
            print(f"[{i}] {name}: ok — {fn()}", flush=True)
            passed += 1
        except Exception as e:  # report every step, then fail overall
            failed += 1
            if isinstance(e, grpc.RpcError):
                print(f"[{i}] {name}: FAILED — gRPC {e.code().name}: {e.details()}", flush=True)
            else:
                print(f"[{i}] {name}: FAILED — {type(e).__name__}: {e}", flush=True)
                traceback.print_exc(file=sys.stderr)
    print(f"interop: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
