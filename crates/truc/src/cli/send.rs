//! `truc send`: a signed document with one or several attachments, or an
//! edXML (QCVN 102:2016) package as a records-office system writes it.
//!
//! The attachments travel as one payload, one after another, described by
//! the signed header's manifest (name, description, media type, range,
//! SHA-256 each). Small payloads go inline; large ones in resumable chunks,
//! payload first (hashed in the one pass that sends them, the header signed
//! last), or header first for an edXML package (its digests are known once
//! it is read).

use std::path::{Path, PathBuf};

use anyhow::Context;
use prost::Message;
use truc_client::transfer::{AttachmentMeta, Digests, SourceFiles};
use truc_proto::v1::{DocumentHeader, Priority, SendResponse};

use super::errors::Problem;
use super::output;
use super::send_note::SendNote;
use super::Conn;

#[derive(Debug, clap::Args)]
pub(crate) struct SendArgs {
    /// Recipient agency codes, comma-separated (with --edxml: the package's
    /// To elements instead).
    #[arg(long, value_delimiter = ',', required_unless_present_any = ["abandon", "edxml"], conflicts_with = "edxml", value_name = "CODE[,CODE…]", value_parser = super::agency_code)]
    to: Vec<String>,
    /// Số: the document's number from the records office's register, e.g.
    /// 123. With --notation it makes the document id
    /// <your code>,<--promulgated>,<number>/<notation>, as the axis writes it.
    #[arg(long, required_unless_present_any = ["document_id", "abandon", "edxml"], requires = "notation")]
    number: Option<String>,
    /// Ký hiệu: the notation, e.g. UBND-VX or VPCP-TTĐT.
    #[arg(long, required_unless_present_any = ["document_id", "abandon", "edxml"], requires = "number")]
    notation: Option<String>,
    /// Ngày ban hành: the promulgation date, local (yyyy/MM/dd or
    /// yyyy-MM-dd); today in the axis's local time when not given (with
    /// --document-id: not stated unless given).
    #[arg(long, value_name = "DATE", value_parser = local_date)]
    promulgated: Option<jiff::civil::Date>,
    /// Địa danh: where it was promulgated, e.g. "Hà Nội".
    #[arg(long, default_value = "")]
    place: String,
    /// The whole document id instead of --number/--notation (a document
    /// your system already numbered, or a resend). Sending the same id again
    /// is answered with the original acceptance. It must start with your
    /// agency code and a comma.
    #[arg(long, visible_alias = "id", conflicts_with = "abandon")]
    document_id: Option<String>,
    /// Người ký: the signer's full name, e.g. "Nguyễn Văn A".
    #[arg(long, default_value = "")]
    signer: String,
    /// Chức vụ: the signer's position, e.g. "Chánh Văn phòng".
    #[arg(long, default_value = "")]
    position: String,
    /// Thẩm quyền ký: TM., KT., TL. or Q.
    #[arg(long, default_value = "")]
    competence: String,
    /// Hạn xử lý: the processing deadline, a local date (yyyy/MM/dd or
    /// yyyy-MM-dd); due by the end of that day in the axis's local time.
    #[arg(long, value_name = "DATE", value_parser = local_date)]
    due: Option<jiff::civil::Date>,
    /// Tóm tắt nội dung: a summary of the content.
    #[arg(long, default_value = "")]
    content: String,
    /// Nơi nhận as printed on the document, separated by ';' (or repeat the
    /// flag): "Như trên;Lưu: VT". Text only: routing is --to.
    #[arg(long, value_delimiter = ';', value_name = "PLACE[;PLACE…]")]
    to_places: Vec<String>,
    /// A document this one answers, by its DocumentId (another agency's:
    /// carried unchanged). Repeat for several.
    #[arg(long, value_name = "DOCUMENT_ID")]
    response_for: Vec<String>,
    /// Chỉ đạo (edXML SteeringType), the integer your system uses.
    #[arg(long, default_value_t = 0)]
    steering: i32,
    /// Trích yếu: what the document is about.
    #[arg(long, default_value = "")]
    subject: String,
    /// Độ khẩn, by name or number (0..=4).
    #[arg(long, default_value = "thuong", value_parser = super::names::parser::<Priority>())]
    priority: Priority,
    /// Document type, e.g. "Công văn".
    #[arg(long, default_value = "")]
    document_type: String,
    /// Media type of FILE (the --attach files say theirs with type=…;
    /// without, it is guessed from the file name's extension).
    #[arg(long, value_name = "MEDIA/TYPE")]
    content_type: Option<String>,
    /// Attach a file, with what the manifest says of it:
    /// FILE[;name=NAME][;description=TEXT][;type=MEDIA/TYPE][;id=CONTENT-ID].
    /// Repeat for several: they travel one after another as one payload,
    /// each with its own SHA-256 under the one signature, and arrive as
    /// files of their own. Name defaults to the file's name, type to a guess
    /// from its extension, id to cid:attachment-N. FILE (positional) is the
    /// first attachment when given.
    #[arg(long, value_name = "FILE[;name=…;description=…;type=…]", conflicts_with = "edxml")]
    attach: Vec<String>,
    /// Send an edXML package (QCVN 102:2016, prefixed or unprefixed): every
    /// MessageHeader field, the Bussiness block (new, revoke, update,
    /// replace) and the attachments go into the signed header as they are;
    /// recipients come from its To elements. Refused before anything is
    /// sent: malformed XML, another namespace, From not your agency, a To
    /// the hub does not know, base64 that does not decode, a missing
    /// required element. Attachments are decoded to files in TMPDIR as they
    /// are read (never whole in memory): TMPDIR needs room for them.
    #[arg(long, value_name = "PACKAGE", conflicts_with_all = ["number", "notation", "document_id", "promulgated", "abandon"])]
    edxml: Option<PathBuf>,
    /// Payloads larger than this many bytes are uploaded in chunks,
    /// resumable: run the same command again after an interruption.
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    inline_limit: u64,
    /// Forget the interrupted uploads of FILE noted by earlier runs (to any
    /// recipients) instead of sending it; the hub deletes the bytes it has
    /// after limits.upload_expiry_hours.
    #[arg(long)]
    abandon: bool,
    /// The file to send (or its first attachment, with --attach).
    #[arg(required_unless_present_any = ["attach", "edxml"])]
    file: Option<PathBuf>,
    #[command(flatten)]
    conn: Conn,
}

/// A local date as records offices write it: `yyyy/MM/dd` (edXML) or `yyyy-MM-dd`.
fn local_date(s: &str) -> Result<jiff::civil::Date, String> {
    truc_edxml::EdDate::parse(&s.replace('-', "/"))
        .date()
        .filter(|_| s.len() == 10)
        .ok_or_else(|| format!("{s:?} is not a date: write yyyy/MM/dd, e.g. 2026/12/06"))
}

/// A ResponseFor from a DocumentId: the id as given, and its parts when it
/// has the axis's form (another agency's: never checked, carried as is).
fn response_for(id: &str) -> truc_proto::v1::ResponseFor {
    let mut r = truc_proto::v1::ResponseFor {
        document_id: id.to_string(),
        ..Default::default()
    };
    if let Some(p) = truc_edxml::DocumentIdParts::split(id) {
        r.organ_id = p.sender.to_string();
        r.promulgation_date = p.date.to_string();
        r.code = p.number_notation.to_string();
    }
    r
}

fn axis_offset() -> jiff::tz::Offset {
    jiff::tz::Offset::from_seconds(output::axis_offset_minutes() * 60).unwrap_or(jiff::tz::Offset::UTC)
}

/// One `--attach` value: the file and what the manifest says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttachSpec {
    pub(crate) path: PathBuf,
    pub(crate) meta: AttachmentMeta,
}

/// `FILE[;name=…][;description=…][;type=…][;id=…]`. The file ends at the
/// first `;` followed by one of the keys, so a path or a description may
/// hold other semicolons.
pub(crate) fn parse_attach(spec: &str, index: usize) -> Result<AttachSpec, Problem> {
    const KEYS: [&str; 4] = ["name=", "description=", "type=", "id="];
    let cuts: Vec<usize> = spec
        .match_indices(';')
        .map(|(i, _)| i)
        .filter(|i| KEYS.iter().any(|k| spec[i + 1..].starts_with(k)))
        .collect();
    let file_end = cuts.first().copied().unwrap_or(spec.len());
    let path = PathBuf::from(&spec[..file_end]);
    if spec[..file_end].is_empty() {
        return Err(Problem::usage(format!("--attach {spec:?}: no file"))
            .hint("write --attach FILE or --attach \"FILE;name=NAME;description=TEXT;type=MEDIA/TYPE\""));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut meta = AttachmentMeta {
        content_id: format!("cid:attachment-{}", index + 1),
        media_type: guess_media_type(&name).to_string(),
        name,
        description: String::new(),
    };
    for (n, &at) in cuts.iter().enumerate() {
        let end = cuts.get(n + 1).copied().unwrap_or(spec.len());
        let item = &spec[at + 1..end];
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        match key {
            "name" => meta.name = value.to_string(),
            "description" => meta.description = value.to_string(),
            "type" => meta.media_type = value.to_string(),
            _ => meta.content_id = value.to_string(),
        }
    }
    if !truc_core::attachments::is_plain_file_name(&meta.name) {
        return Err(Problem::usage(format!(
            "--attach {spec:?}: name {:?} is not a plain file name",
            meta.name
        ))
        .hint("give name=NAME without '/' or '\\', not \".\" or \"..\", at most 255 bytes"));
    }
    Ok(AttachSpec { path, meta })
}

/// A media type from a file name's extension (what records offices attach);
/// application/octet-stream for the rest.
pub(crate) fn guess_media_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        "zip" => "application/zip",
        "xml" | "edxml" => "application/xml",
        "txt" => "text/plain",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "tif" | "tiff" => "image/tiff",
        _ => "application/octet-stream",
    }
}

/// A document ready to sign but for its payload: the header, what each
/// attachment says of itself, the files holding their bytes.
struct Prepared {
    header: DocumentHeader,
    meta: Vec<AttachmentMeta>,
    files: SourceFiles,
    /// Digests already known (an edXML package: computed as it was read).
    known: Option<Digests>,
    /// The files that name a chunked send's resume note.
    note_files: Vec<PathBuf>,
    /// For the progress line: what is sent (a file's name, "3 files").
    label: String,
    /// An edXML package's decoded attachments, removed when done.
    _decoded: Option<tempfile::TempDir>,
}

pub(crate) async fn send(a: SendArgs) -> anyhow::Result<()> {
    if a.abandon {
        return abandon(&a);
    }
    let client = a.conn.client().await?;
    let from = client
        .identity()
        .principal
        .agency()
        .ok_or_else(|| {
            Problem::refused(format!(
                "{} is not an agency identity: only an agency sends documents",
                client.identity().principal
            ))
            .hint("pass --identity PKI/agencies/CODE (TRUC_IDENTITY), the agency that signs and sends")
        })?
        .to_string();
    let prepared = match &a.edxml {
        Some(package) => from_edxml(&client, &from, package).await?,
        None => from_flags(&from, &a)?,
    };
    let document_id = prepared.header.document_id.clone();
    let resp = transmit(&client, &from, prepared, &a).await?;
    print_acceptance(&a.conn, &document_id, &resp);
    Ok(())
}

fn abandon(a: &SendArgs) -> anyhow::Result<()> {
    let file = a
        .file
        .as_ref()
        .ok_or_else(|| Problem::usage("--abandon needs the FILE whose uploads to forget"))?;
    let gone = SendNote::abandon(file).with_context(|| format!("reading {}", file.display()))?;
    let row = |(to, id): &(String, String)| serde_json::json!({"to": to, "document_id": id});
    let text = |headers: bool| {
        let mut t = String::new();
        if gone.is_empty() && headers {
            t = format!("no interrupted upload of {} is noted\n", file.display());
        }
        for (to, id) in &gone {
            t += &format!("forgot the upload of {} to {to} (document {id:?})\n", file.display());
        }
        t
    };
    a.conn
        .out
        .list(&gone, row, |v| serde_json::json!({"abandoned": v}), text);
    Ok(())
}

/// The document the flags describe, with FILE and the --attach files.
fn from_flags(from: &str, a: &SendArgs) -> anyhow::Result<Prepared> {
    let mut specs = Vec::new();
    if let Some(file) = &a.file {
        // The positional FILE is a path as given, whatever it contains.
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let media_type = a
            .content_type
            .clone()
            .unwrap_or_else(|| guess_media_type(&name).to_string());
        specs.push(AttachSpec {
            path: file.clone(),
            meta: AttachmentMeta {
                content_id: "cid:attachment-1".into(),
                name,
                description: String::new(),
                media_type,
            },
        });
    }
    for spec in &a.attach {
        specs.push(parse_attach(spec, specs.len())?);
    }
    let paths: Vec<PathBuf> = specs.iter().map(|s| s.path.clone()).collect();
    let files = SourceFiles::open(&paths).map_err(|e| {
        let which = paths
            .iter()
            .find(|p| std::fs::metadata(p).is_err())
            .unwrap_or(&paths[0]);
        anyhow::Error::new(e).context(format!("reading {}", which.display()))
    })?;
    let priority: Priority = a.priority;
    let offset = output::axis_offset_minutes();
    // The promulgation date: local, today at the axis's offset by default.
    let promulgated = a.promulgated.unwrap_or_else(|| {
        truc_core::Calendar::at_offset(offset)
            .map(|c| c.local_date(truc_core::now_unix_ms()))
            .unwrap_or_else(|_| truc_core::calendar::date_of_day(truc_core::now_unix_ms().div_euclid(86_400_000)))
    });
    let document_id = match (&a.document_id, &a.number, &a.notation) {
        (Some(id), _, _) => id.clone(),
        (None, Some(number), Some(notation)) => truc_edxml::document_id(from, promulgated, number, notation),
        // clap requires --number and --notation without --document-id.
        _ => anyhow::bail!("pass --number and --notation (or --document-id)"),
    };
    let signer = (!a.signer.is_empty() || !a.position.is_empty() || !a.competence.is_empty()).then(|| {
        truc_proto::v1::SignerInfo {
            competence: a.competence.clone(),
            position: a.position.clone(),
            full_name: a.signer.clone(),
        }
    });
    let meta: Vec<AttachmentMeta> = specs.iter().map(|s| s.meta.clone()).collect();
    let header = DocumentHeader {
        to: a.to.clone(),
        document_id,
        subject: a.subject.clone(),
        code_number: a.number.clone().unwrap_or_default(),
        code_notation: a.notation.clone().unwrap_or_default(),
        document_type: a.document_type.clone(),
        priority: priority as i32,
        due_date_unix_ms: a
            .due
            .map(|d| truc_client::edxml::end_of_local_day(d, axis_offset()))
            .unwrap_or(0),
        promulgation_date: if a.document_id.is_some() && a.promulgated.is_none() {
            String::new()
        } else {
            truc_edxml::EdDate::Date(promulgated).to_string()
        },
        promulgation_place: a.place.clone(),
        signer,
        content: a.content.clone(),
        to_places: a
            .to_places
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        response_for: a.response_for.iter().map(|id| response_for(id)).collect(),
        steering_type: a.steering,
        ..Default::default()
    };
    let label = match specs.as_slice() {
        [one] => one.meta.name.clone(),
        many => format!("{} files", many.len()),
    };
    Ok(Prepared {
        header,
        meta,
        files,
        known: None,
        note_files: paths,
        label,
        _decoded: None,
    })
}

/// The document an edXML package describes, checked before anything is
/// sent: well-formed, in QCVN 102's namespace, From the sending agency,
/// every To registered at the hub.
async fn from_edxml(client: &truc_client::Client, from: &str, package: &Path) -> anyhow::Result<Prepared> {
    let fix = |e: String| {
        Problem::usage(e).hint(format!(
            "correct the package in your document system and send it again; nothing was sent ({})",
            package.display()
        ))
    };
    // The hub's offset (DueDate is a local date there) and its largest
    // document (reading stops as soon as the attachments are over it).
    let mut max_document = MAX_PACKAGE;
    if let Ok(info) = client.hub_info().await {
        output::use_hub_offset(info.utc_offset_minutes);
        if info.max_document_size > 0 {
            max_document = info.max_document_size;
        }
    }
    let decoded = tempfile::Builder::new()
        .prefix("truc-edxml-")
        .tempdir()
        .context("making a temporary directory for the attachments (TMPDIR)")?;
    let limits = truc_edxml::Limits::new(MAX_PACKAGE);
    let read = match truc_client::edxml::read_package(package, decoded.path(), limits, max_document) {
        Ok(r) => r,
        Err(truc_client::edxml::ReadError::Refused { source, line, column }) => {
            return Err(fix(format!(
                "{}: refused: {source} (near line {line}, column {column})",
                package.display()
            ))
            .into())
        }
        Err(e @ truc_client::edxml::ReadError::TooLarge { .. }) => {
            return Err(Problem::refused(format!("{}: refused: {e}", package.display()))
                .hint(format!(
                    "send the large annexes another way, or ask the hub's operator to raise limits.max_document_size; \
                     nothing was sent ({})",
                    package.display()
                ))
                .into())
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", package.display()))),
    };
    for w in &read.package.dropped {
        eprintln!("truc: warning: {}: {} (not carried)", w.element, w.reason);
    }
    let imported = truc_client::edxml::import(&read.package, axis_offset())
        .map_err(|e| fix(format!("{}: {e}", package.display())))?;
    if imported.header.from != from {
        return Err(Problem::refused(format!(
            "{}: edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From/OrganId {:?} is not the sending agency {from} \
             (your identity's)",
            package.display(),
            imported.header.from
        ))
        .hint(
            "send the package with the identity of the agency in From (--identity PKI/agencies/CODE), or correct From",
        )
        .into());
    }
    // The hub refuses another agency's DocumentId too, but only once the
    // package is on its way: said here before anything is sent.
    if let Err(e) = truc_core::AgencyCode::parse(from)
        .and_then(|code| truc_core::document::check_document_id_sender(&code, &imported.header.document_id))
    {
        return Err(fix(format!(
            "{}: refused: edXML/edXMLEnvelope/edXMLHeader/MessageHeader/DocumentId {:?}: {e}",
            package.display(),
            imported.header.document_id
        ))
        .into());
    }
    let known = client.lookup_agencies(&imported.header.to).await;
    let unknown: Vec<String> = match known {
        Ok(list) => list.into_iter().filter(|e| !e.registered).map(|e| e.code).collect(),
        Err(s) if s.code() == Some(tonic::Code::InvalidArgument) => {
            return Err(fix(format!(
                "{}: edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To: {}",
                package.display(),
                s.status().map_or_else(|| s.to_string(), |st| st.message().to_string())
            ))
            .into())
        }
        Err(s) => return Err(s.into()),
    };
    if !unknown.is_empty() {
        return Err(Problem::not_found(format!(
            "{}: edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To: not registered at the hub: {}",
            package.display(),
            unknown.join(", ")
        ))
        .hint(
            "correct the To codes in the package, or ask the hub's operator to register the agencies \
             (truc ops agencies add CODE --name NAME); nothing was sent",
        )
        .into());
    }
    let files = SourceFiles::open(&read.files).context("reading the decoded attachments")?;
    Ok(Prepared {
        header: imported.header,
        meta: imported.attachments,
        files,
        known: Some(read.digests),
        note_files: vec![package.to_path_buf()],
        label: package
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        _decoded: Some(decoded),
    })
}

/// Largest edXML package read (its base64 included): above the hub's
/// default maximum document size of 4 GiB once decoded. The attachments
/// are held to the hub's own maximum as they are decoded
/// (`HubInfo.max_document_size`; this much for a hub that does not say).
const MAX_PACKAGE: u64 = 6 << 30;

/// The signed header of `p` over a payload with `digests`: the manifest,
/// and for one attachment its name and type where older receivers look.
fn complete(mut header: DocumentHeader, meta: &[AttachmentMeta], digests: &Digests) -> anyhow::Result<DocumentHeader> {
    header.attachments = truc_client::transfer::manifest(meta, digests);
    if let [one] = meta {
        header.file_name = one.name.clone();
        header.content_type = one.media_type.clone();
    }
    header.payload_sha256 = digests.sha256.to_vec();
    header.payload_size = digests.size;
    header.signed_at_unix_ms = truc_core::now_unix_ms();
    let size = header.encoded_len();
    if size > truc_core::document::MAX_HEADER_BYTES {
        return Err(Problem::usage(format!(
            "the signed header would be {size} bytes; at most {} (the MessageHeader, its Bussiness block, the \
             manifest and any elements Truc carries unmodelled, such as an XML-DSig Signature)",
            truc_core::document::MAX_HEADER_BYTES
        ))
        .hint("send fewer attachments or shorter texts")
        .into());
    }
    Ok(header)
}

/// Sign and send: inline when small, else in resumable chunks.
async fn transmit(client: &truc_client::Client, from: &str, p: Prepared, a: &SendArgs) -> anyhow::Result<SendResponse> {
    let identity = client.identity();
    let total = p.files.total();
    let document_id = p.header.document_id.clone();
    if total <= a.inline_limit {
        let (payload, digests) = truc_client::transfer::read_inline(&p.files).context("reading the attachments")?;
        let header = complete(p.header, &p.meta, &digests)?;
        return Ok(client
            .send(truc_client::sign_document(identity, header, payload)?)
            .await?);
    }
    let shown = match p.note_files.as_slice() {
        [one] => one.display().to_string(),
        many => format!("{} and {} more", many[0].display(), many.len() - 1),
    };
    let bar = super::progress::Bar::new(
        &format!("sending {}", p.label),
        &format!("upload of {shown}"),
        !a.conn.is_json(),
    );
    let progress = |done, total| bar.update(done, total);
    let interrupted = |what: &str| {
        format!(
            "interrupted: run the same command to resume (document {document_id}; the hub keeps the bytes it has \
             until limits.upload_expiry_hours){what}"
        )
    };
    let mut note = None;
    let upload = async {
        if let Some(digests) = &p.known {
            // Header first: the digests are known, and a rerun resumes
            // the same upload (named by document id and digest).
            let header = complete(p.header.clone(), &p.meta, digests)?;
            let doc = truc_client::transfer::sign_external(identity, header, digests.sha256, digests.size)?;
            return Ok::<_, anyhow::Error>(client.upload_files(doc, &p.files, &progress).await);
        }
        // A large send's resume state: an interrupted send of the same
        // files to the same agencies resumes under the same ids.
        let n =
            note.insert(SendNote::load(from, &p.header.to, &p.note_files).with_context(|| format!("reading {shown}"))?);
        for (to, id) in n.others() {
            eprintln!(
                "truc: an interrupted upload of {} to {to} (document {id:?}) is noted too; this send to {} starts its \
                 own (`truc send --abandon {}` forgets the other)",
                shown,
                p.header.to.join(","),
                p.note_files[0].display()
            );
        }
        if let Some(noted) = n.document_id.as_ref().filter(|d| **d != document_id) {
            eprintln!(
                "truc: an interrupted upload of {} was noted as document {noted:?}; this one is {document_id:?} and \
                 starts its own upload in place of it (the hub deletes the bytes it kept after \
                 limits.upload_expiry_hours)",
                shown,
            );
            n.upload_id = None;
            n.digests = None;
        }
        n.document_id = Some(document_id.clone());
        let upload_id = n
            .upload_id
            .get_or_insert_with(truc_client::transfer::new_upload_id)
            .clone();
        n.save();
        match n.digests.clone() {
            // An earlier run read every file: if the hub has the payload
            // whole, the header alone is enough.
            Some(d) if d.sizes == p.files.sizes() && hub_has(client, &document_id, &d.sha256, &upload_id).await? => {
                let header = complete(p.header.clone(), &p.meta, &d)?;
                let doc = truc_client::transfer::sign_external(identity, header, d.sha256, d.size)?;
                Ok(client.upload_files(doc, &p.files, &progress).await)
            }
            // Payload first: hashed as it is sent, the header signed and
            // sent last, so each file is read once.
            _ => {
                let sign = |d: &Digests| {
                    n.digests = Some(d.clone());
                    n.save();
                    let header = complete(p.header.clone(), &p.meta, d)
                        .map_err(|e| truc_client::ClientError::Transfer(e.to_string()))?;
                    truc_client::transfer::sign_external(identity, header, d.sha256, d.size)
                };
                Ok(client
                    .upload_files_payload_first(&upload_id, &p.header.to, &p.files, sign, &progress)
                    .await)
            }
        }
    };
    // Ctrl-C: the hub keeps what it has and the note stays; say how to go
    // on (exit 130, as a shell reports SIGINT).
    let resp = tokio::select! {
        r = upload => r?,
        _ = tokio::signal::ctrl_c() => {
            bar.finish();
            eprintln!("truc: {}", interrupted(""));
            std::process::exit(130);
        }
    };
    bar.finish();
    let resp = resp.map_err(|e| -> anyhow::Error {
        if !e.is_transient() {
            return e.into();
        }
        let f = super::errors::from_client(&e);
        let forget = if p.known.is_some() {
            String::new()
        } else {
            format!("; `truc send --abandon {}` forgets it", p.note_files[0].display())
        };
        Problem::new(f.kind, f.message).hint(interrupted(&forget)).into()
    })?;
    if let Some(n) = note {
        n.remove();
    }
    Ok(resp)
}

fn print_acceptance(conn: &Conn, document_id: &str, resp: &SendResponse) {
    conn.out.object(output::acceptance_json(document_id, resp), || {
        let receipt = resp.receipt.as_ref().and_then(|r| {
            let index = truc_proto::v1::Receipt::decode(r.receipt.as_slice()).ok()?.index;
            let head = truc_proto::v1::TreeHead::decode(r.tree_head.as_ref()?.tree_head.as_slice()).ok()?;
            Some(format!(
                "receipt #{index} in signed tree head of size {}",
                head.tree_size
            ))
        });
        let mut t = format!(
            "{} {document_id:?} as hub document {} at {}; {}\n",
            if resp.duplicate {
                "already accepted:"
            } else {
                "accepted:"
            },
            resp.hub_document_id,
            output::time(resp.accepted_at_unix_ms),
            receipt.unwrap_or_else(|| "no receipt".into()),
        );
        for r in &resp.redirects {
            t += &format!(
                "  {} is retired: its copy goes to its successor {}\n",
                r.addressed, r.delivered_to
            );
        }
        for w in &resp.warnings {
            t += &format!("  warning: {w}\n");
        }
        t
    });
}

/// Whether the hub has the payload with this digest whole already.
async fn hub_has(
    client: &truc_client::Client,
    document_id: &str,
    sha: &[u8; 32],
    upload_id: &str,
) -> anyhow::Result<bool> {
    let status = client
        .axis()
        .upload_status(truc_proto::v1::UploadStatusRequest {
            document_id: document_id.to_string(),
            payload_sha256: sha.to_vec(),
            upload_id: upload_id.to_string(),
        })
        .await?
        .into_inner();
    Ok(status.complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_specs() {
        let s = parse_attach("cv.pdf", 0).unwrap();
        assert_eq!(s.path, PathBuf::from("cv.pdf"));
        assert_eq!(s.meta.name, "cv.pdf");
        assert_eq!(s.meta.media_type, "application/pdf");
        assert_eq!(s.meta.content_id, "cid:attachment-1");
        let s = parse_attach(
            "dir/pl;1.xlsx;name=Phụ lục 1.xlsx;description=Bảng số liệu; quý IV;type=application/x-custom;id=cid:pl1",
            2,
        )
        .unwrap();
        assert_eq!(s.path, PathBuf::from("dir/pl;1.xlsx"));
        assert_eq!(s.meta.name, "Phụ lục 1.xlsx");
        assert_eq!(s.meta.description, "Bảng số liệu; quý IV");
        assert_eq!(s.meta.media_type, "application/x-custom");
        assert_eq!(s.meta.content_id, "cid:pl1");
        assert!(parse_attach(";name=x", 0).is_err());
        assert!(parse_attach("a.pdf;name=../b.pdf", 0).is_err());
        assert_eq!(guess_media_type("SCAN.TIF"), "image/tiff");
        assert_eq!(guess_media_type("noext"), "application/octet-stream");
    }
}
