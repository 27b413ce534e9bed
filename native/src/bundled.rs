//! The model served when no `--model` is given: `models/spam-bert`, a small BERT spam/ham classifier trained by
//! `models/train_spam.py`. Its files are embedded in the binary, so an installed binary serves it from any working
//! directory.

use std::path::PathBuf;

use anyhow::Context;
use classify_protocol::model::file_names;

/// The name it is served under.
pub const NAME: &str = "spam-bert";

/// The files the native server reads, as embedded at build time.
const FILES: &[(&str, &[u8])] = &[
    (
        file_names::CONFIG,
        include_bytes!("../../models/spam-bert/config.json"),
    ),
    (
        file_names::TOKENIZER,
        include_bytes!("../../models/spam-bert/tokenizer.json"),
    ),
    (
        file_names::TOKENIZER_CONFIG,
        include_bytes!("../../models/spam-bert/tokenizer_config.json"),
    ),
    (
        file_names::SAFETENSORS,
        include_bytes!("../../models/spam-bert/model.safetensors"),
    ),
];

/// A directory with the bundled model's files: written once under the temp directory (named by a hash of the
/// files, so a binary with another bundled model writes its own), and reused after.
pub fn dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("classify-{NAME}-{:016x}", fingerprint()));
    if FILES.iter().all(|(name, bytes)| {
        std::fs::metadata(dir.join(name)).is_ok_and(|m| m.len() == bytes.len() as u64)
    }) {
        return Ok(dir);
    }
    // Written next to its final place, then renamed: a concurrent start never reads a half-written copy.
    let staging = dir.with_extension(format!("part-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| staging.display().to_string())?;
    for (name, bytes) in FILES {
        std::fs::write(staging.join(name), bytes)
            .with_context(|| staging.join(name).display().to_string())?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::rename(&staging, &dir).is_err() {
        // Another process put its copy there first.
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(dir)
}

/// FNV-1a over the file names and bytes.
fn fingerprint() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, bytes) in FILES {
        for byte in name.bytes().chain(bytes.iter().copied()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_files_are_written_once_and_reused() {
        let first = dir().unwrap();
        for (name, bytes) in FILES {
            assert_eq!(std::fs::read(first.join(name)).unwrap(), *bytes, "{name}");
        }
        assert_eq!(dir().unwrap(), first);
    }
}
