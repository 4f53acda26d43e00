//! Generates the Rust types and gRPC stubs from `proto/truc/v1` with protox, a
//! pure-Rust protobuf compiler, so building needs no system `protoc`.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "truc/v1/document.proto",
    "truc/v1/receipt.proto",
    "truc/v1/axis.proto",
    "truc/v1/ops.proto",
    "truc/v1/audit.proto",
    "truc/v1/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    for f in FILES {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(FILES, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("truc_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    // Payload chunks decode as `bytes::Bytes`: a slice of the receive
    // buffer, not a copy into a fresh `Vec` (large documents move through
    // these two fields only).
    tonic_prost_build::configure()
        .bytes(".truc.v1.UploadRequest.chunk")
        .bytes(".truc.v1.DownloadChunk.data")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
