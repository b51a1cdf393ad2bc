//! Plain data values and their canonical, language-independent byte encoding.
//!
//! The encoding is the foundation of every id and tag (see docs/tag-scheme.md): each value is
//! typed and framed, so no two different values share an encoding, and maps are sorted by the
//! UTF-8 bytes of their keys, so no iteration order can leak in.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

const NULL: u8 = 0x00;
const BOOL: u8 = 0x01;
const INT: u8 = 0x02;
const FLOAT: u8 = 0x03;
const STR: u8 = 0x04;
const BYTES: u8 = 0x05;
const LIST: u8 = 0x06;
const MAP: u8 = 0x07;

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn strs<S: AsRef<str>>(items: &[S]) -> Value {
        Value::List(items.iter().map(|s| Value::Str(s.as_ref().to_owned())).collect())
    }

    pub fn opt_str(s: Option<&str>) -> Value {
        s.map_or(Value::Null, Value::str)
    }

    /// Appends the canonical encoding of `self` to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(NULL),
            Value::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(*b)]),
            Value::Int(i) => {
                out.push(INT);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Float(f) => {
                out.push(FLOAT);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::Str(s) => frame(out, STR, s.as_bytes()),
            Value::Bytes(b) => frame(out, BYTES, b),
            Value::List(items) => {
                out.push(LIST);
                out.extend_from_slice(&(items.len() as u64).to_be_bytes());
                items.iter().for_each(|v| v.encode_into(out));
            }
            // BTreeMap<String, _> iterates in byte order of the keys, which is the documented order.
            Value::Map(map) => {
                out.push(MAP);
                out.extend_from_slice(&(map.len() as u64).to_be_bytes());
                for (k, v) in map {
                    frame(out, STR, k.as_bytes());
                    v.encode_into(out);
                }
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// SHA-256 of the canonical encoding.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }

    /// Every string inside the value (keys included), for checks such as "no NUL byte".
    pub fn visit_strings<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        match self {
            Value::Str(s) => f(s),
            Value::List(items) => items.iter().for_each(|v| v.visit_strings(f)),
            Value::Map(map) => map.iter().for_each(|(k, v)| {
                f(k);
                v.visit_strings(f);
            }),
            _ => {}
        }
    }
}

/// Pieces of the encoding written straight into a buffer, for hot paths that would otherwise
/// build large `Value` trees only to encode them. They produce exactly `Value::encode`'s bytes.
pub mod stream {
    pub fn str(out: &mut Vec<u8>, s: &str) {
        super::frame(out, super::STR, s.as_bytes());
    }

    pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        super::frame(out, super::BYTES, b);
    }

    pub fn bool(out: &mut Vec<u8>, b: bool) {
        out.extend_from_slice(&[super::BOOL, u8::from(b)]);
    }

    pub fn list_header(out: &mut Vec<u8>, len: usize) {
        out.push(super::LIST);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }

    /// Entries must then follow sorted by key bytes, each as `str(key)` and a value.
    pub fn map_header(out: &mut Vec<u8>, len: usize) {
        out.push(super::MAP);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

fn frame(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_separates_values_that_concatenate_alike() {
        let a = Value::List(vec![Value::str("ab"), Value::str("c")]);
        let b = Value::List(vec![Value::str("a"), Value::str("bc")]);
        assert_ne!(a.encode(), b.encode());
    }

    #[test]
    fn streamed_pieces_match_value_encoding() {
        let v = Value::List(vec![
            Value::str("file"),
            Value::Bool(true),
            Value::Bytes(vec![1, 2]),
            Value::Map([("k".to_owned(), Value::Bytes(vec![3]))].into()),
        ]);
        let mut out = Vec::new();
        stream::list_header(&mut out, 4);
        stream::str(&mut out, "file");
        stream::bool(&mut out, true);
        stream::bytes(&mut out, &[1, 2]);
        stream::map_header(&mut out, 1);
        stream::str(&mut out, "k");
        stream::bytes(&mut out, &[3]);
        assert_eq!(out, v.encode());
    }

    #[test]
    fn types_are_distinguished() {
        assert_ne!(Value::str("1").encode(), Value::Int(1).encode());
        assert_ne!(Value::Null.encode(), Value::List(vec![]).encode());
        assert_ne!(Value::Str(String::new()).encode(), Value::Bytes(vec![]).encode());
    }

    #[test]
    fn encoding_bytes_are_as_documented() {
        // docs/tag-scheme.md gives this exact example.
        let v = Value::List(vec![Value::str("a"), Value::Bool(true)]);
        assert_eq!(
            v.encode(),
            [
                &[0x06][..],
                &2u64.to_be_bytes(),
                &[0x04],
                &1u64.to_be_bytes(),
                b"a",
                &[0x01, 0x01]
            ]
            .concat()
        );
    }
}
