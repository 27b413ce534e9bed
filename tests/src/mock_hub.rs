//! A local stand-in for the Hugging Face Hub's file API on 127.0.0.1, for tests of downloads by Hub id: the
//! repository listing (`/api/models/{repo}/revision/{rev}`) and file resolution (`/{repo}/resolve/{rev}/{file}`
//! with `Range`, the `etag`, `x-repo-commit` and `content-range` headers the hub sends), gated repositories that
//! want a token, and a file whose transfer is cut off halfway.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One repository the mock serves.
#[derive(Debug, Clone, Default)]
pub struct MockRepo {
    pub id: String,
    /// Branch or tag names that resolve to `commit`.
    pub refs: Vec<String>,
    pub commit: String,
    pub files: BTreeMap<String, Vec<u8>>,
    /// A Bearer token the repository wants (a gated or private repository).
    pub token: Option<String>,
    /// A file whose download stops after half of its bytes (the connection closes).
    pub cut_off: Option<String>,
}

impl MockRepo {
    /// The files of a model directory (every regular file at its top level).
    pub fn from_dir(id: &str, commit: &str, dir: &Path) -> std::io::Result<MockRepo> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.insert(
                    entry.file_name().to_string_lossy().into_owned(),
                    std::fs::read(entry.path())?,
                );
            }
        }
        Ok(MockRepo {
            id: id.to_owned(),
            refs: vec!["main".to_owned()],
            commit: commit.to_owned(),
            files,
            ..MockRepo::default()
        })
    }
}

pub struct MockHub {
    pub url: String,
    /// Every request line served, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl MockHub {
    /// Serves `repos` on a free port until the process ends.
    pub fn start(repos: Vec<MockRepo>) -> std::io::Result<MockHub> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (log, repos) = (requests.clone(), Arc::new(repos));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, repos) = (log.clone(), repos.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &repos, &log);
                });
            }
        });
        Ok(MockHub { url, requests })
    }

    /// Requests whose line contains `fragment`.
    pub fn count(&self, fragment: &str) -> usize {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.iter().filter(|r| r.contains(fragment)).count()
    }
}

struct Head {
    line: String,
    path: String,
    headers: BTreeMap<String, String>,
}

fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let line = line.trim_end().to_owned();
    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    Ok(Some(Head {
        line,
        path,
        headers,
    }))
}

/// Answers requests on one connection (keep-alive) until the client closes it.
fn serve(stream: TcpStream, repos: &[MockRepo], log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while let Some(head) = read_head(&mut reader)? {
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(head.line.clone());
        if !answer(&mut stream, &head, repos)? {
            return Ok(());
        }
    }
    Ok(())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the answer; `false` when the connection must close.
fn answer(stream: &mut TcpStream, head: &Head, repos: &[MockRepo]) -> std::io::Result<bool> {
    let path = head.path.split('?').next().unwrap_or_default();
    let find = |id: &str, revision: &str| {
        repos.iter().find(|r| {
            r.id == id && (r.commit == revision || r.refs.iter().any(|name| name == revision))
        })
    };
    let authorized = |repo: &MockRepo| match &repo.token {
        None => true,
        Some(token) => head.headers.get("authorization") == Some(&format!("Bearer {token}")),
    };
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((id, revision)) = rest.split_once("/revision/") else {
            return respond(stream, 404, &[], br#"{"error":"Repository not found"}"#);
        };
        let (id, revision) = (percent_decode(id), percent_decode(revision));
        return match find(&id, &revision) {
            None => respond(stream, 404, &[], br#"{"error":"Repository not found"}"#),
            Some(repo) if !authorized(repo) => respond(
                stream,
                401,
                &[],
                br#"{"error":"Access to this model is restricted"}"#,
            ),
            Some(repo) => {
                let siblings: Vec<serde_json::Value> = repo
                    .files
                    .keys()
                    .map(|f| serde_json::json!({"rfilename": f}))
                    .collect();
                let body =
                    serde_json::json!({"id": repo.id, "sha": repo.commit, "siblings": siblings});
                respond(stream, 200, &[], body.to_string().as_bytes())
            }
        };
    }
    // /{org}/{name}/resolve/{revision}/{file}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let [org, name, "resolve", revision, file] = parts.as_slice() else {
        return respond(stream, 404, &[], b"not found");
    };
    let id = format!("{org}/{name}");
    let Some(repo) = find(&id, &percent_decode(revision)) else {
        return respond(stream, 404, &[], br#"{"error":"Repository not found"}"#);
    };
    if !authorized(repo) {
        return respond(
            stream,
            401,
            &[],
            br#"{"error":"Access to this model is restricted"}"#,
        );
    }
    let file = percent_decode(file);
    let Some(content) = repo.files.get(&file) else {
        return respond(
            stream,
            404,
            &[("x-error-code", "EntryNotFound")],
            b"Entry not found",
        );
    };
    let start: usize = head
        .headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
        .min(content.len());
    let end = match head.headers.get("range").map(String::as_str) {
        Some("bytes=0-0") => 1.min(content.len()),
        _ => content.len(),
    };
    let etag = format!("\"{}\"", content_hash(content));
    let range = format!("bytes {start}-{}/{}", end.saturating_sub(1), content.len());
    let headers = [
        ("etag", etag.as_str()),
        ("x-repo-commit", repo.commit.as_str()),
        ("content-range", range.as_str()),
    ];
    let body = &content[start..end];
    if repo.cut_off.as_deref() == Some(file.as_str()) && end - start > 1 {
        // Announce the whole body, send half of it, close.
        write_head(stream, 206, &headers, body.len())?;
        stream.write_all(&body[..body.len() / 2])?;
        stream.flush()?;
        return Ok(false);
    }
    respond(stream, 206, &headers, body)
}

fn write_head(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    length: usize,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: {length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<bool> {
    write_head(stream, status, headers, body.len())?;
    stream.write_all(body)?;
    stream.flush()?;
    Ok(true)
}

/// A content hash for etags and blob names (the hub uses git's sha1 or the LFS sha256; readers of the cache only
/// follow the snapshot links, so any stable name does).
fn content_hash(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut halves = [0u64; 2];
    for (seed, half) in halves.iter_mut().enumerate() {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (seed, bytes).hash(&mut hasher);
        *half = hasher.finish();
    }
    format!("{:016x}{:016x}", halves[0], halves[1])
}

/// Lays out `dir`'s files in a Hugging Face cache as the Python client writes it: each file's bytes in
/// `blobs/<hash>`, `snapshots/<commit>/<file>` a relative symlink to its blob, `refs/<branch>` holding the
/// commit hash (no newline).
pub fn write_python_cache(
    cache: &Path,
    id: &str,
    branch: &str,
    commit: &str,
    dir: &Path,
) -> std::io::Result<()> {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let (blobs, snapshot, refs) = (
        repo.join("blobs"),
        repo.join("snapshots").join(commit),
        repo.join("refs"),
    );
    for d in [&blobs, &snapshot, &refs] {
        std::fs::create_dir_all(d)?;
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path())?;
        let blob = content_hash(&bytes);
        std::fs::write(blobs.join(&blob), &bytes)?;
        let link = snapshot.join(entry.file_name());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(Path::new("../../blobs").join(&blob), link)?;
    }
    std::fs::write(refs.join(branch), commit)?;
    Ok(())
}
