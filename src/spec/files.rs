//! Reading the files a spec is made from (a PEP 723 script, a project's TOML files): bounded in
//! size, UTF-8, and a parser's byte offset turned into the line and column a person looks for.

use crate::error::{Error, Result};
use std::path::Path;

/// The text of the file at `path`, which `field` names: at most `max` bytes, UTF-8 (`what` says
/// what such a file is, for the message).
pub fn read_text(field: &str, path: &Path, max: u64, what: &str) -> Result<String> {
    let unreadable = |e: std::io::Error| Error::source(field, path, format!("cannot be read: {e}"));
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > max {
        return Err(Error::source(
            field,
            path,
            format!("is {size} bytes; {what} is at most {max}"),
        ));
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    String::from_utf8(bytes).map_err(|_| Error::source(field, path, format!("is not UTF-8 text ({what} is)")))
}

/// 0-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count();
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count());
    (line, column)
}
