//! YAML spec files: the constructor's keys, strict types, errors with line and column.

use super::{suggest_field, Map, RawBase, RawSpec, Spec, FIELDS};
use crate::error::{Error, Result};
use crate::value::Value;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Larger files are refused before parsing: a spec is a few hundred bytes.
const MAX_YAML_BYTES: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of ImageSpec fields")]
struct YamlSpec {
    name: Option<String>,
    python_version: Option<String>,
    builder: Option<String>,
    source_root: Option<String>,
    source_copy_mode: Option<String>,
    #[serde(default, deserialize_with = "unique_map")]
    env: Option<BTreeMap<String, String>>,
    registry: Option<String>,
    packages: Option<Vec<String>>,
    conda_packages: Option<Vec<String>>,
    conda_channels: Option<Vec<String>>,
    requirements: Option<String>,
    apt_packages: Option<Vec<String>>,
    cuda: Option<String>,
    cudnn: Option<String>,
    base_image: Option<YamlBase>,
    platform: Option<String>,
    pip_index: Option<String>,
    pip_extra_index_url: Option<Vec<String>>,
    pip_secret_mounts: Option<Vec<(String, String)>>,
    pip_extra_args: Option<String>,
    registry_config: Option<String>,
    entrypoint: Option<Vec<String>>,
    commands: Option<Vec<String>>,
    tag_format: Option<String>,
    copy: Option<Vec<String>>,
    python_exec: Option<String>,
    runtime_packages: Option<Vec<String>>,
    #[serde(default, deserialize_with = "unique_map")]
    builder_options: Option<Map>,
    #[serde(default, deserialize_with = "unique_map")]
    builder_config: Option<Map>,
    project: Option<String>,
    project_install_mode: Option<String>,
    overrides: Option<Vec<String>>,
    constraints: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "base_image: expected an image reference string or a mapping of ImageSpec fields"
)]
enum YamlBase {
    Name(String),
    Spec(Box<YamlSpec>),
}

impl From<YamlSpec> for RawSpec {
    fn from(y: YamlSpec) -> RawSpec {
        RawSpec {
            name: y.name,
            python_version: y.python_version,
            builder: y.builder,
            source_root: y.source_root,
            source_copy_mode: y.source_copy_mode,
            env: y.env,
            registry: y.registry,
            packages: y.packages,
            conda_packages: y.conda_packages,
            conda_channels: y.conda_channels,
            requirements: y.requirements,
            apt_packages: y.apt_packages,
            cuda: y.cuda,
            cudnn: y.cudnn,
            base_image: y.base_image.map(|b| match b {
                YamlBase::Name(n) => RawBase::Name(n),
                YamlBase::Spec(s) => RawBase::Raw(Box::new((*s).into())),
            }),
            platform: y.platform,
            pip_index: y.pip_index,
            pip_extra_index_url: y.pip_extra_index_url,
            pip_secret_mounts: y.pip_secret_mounts,
            pip_extra_args: y.pip_extra_args,
            registry_config: y.registry_config,
            entrypoint: y.entrypoint,
            commands: y.commands,
            tag_format: y.tag_format,
            copy: y.copy,
            python_exec: y.python_exec,
            runtime_packages: y.runtime_packages,
            builder_options: y.builder_options,
            builder_config: y.builder_config,
            project: y.project,
            project_install_mode: y.project_install_mode,
            overrides: y.overrides,
            constraints: y.constraints,
            force_push: false,
        }
    }
}

/// A map that refuses duplicate keys (serde's maps keep the last one silently).
fn unique_map<'de, D, V>(d: D) -> std::result::Result<Option<BTreeMap<String, V>>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct UniqueMap<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueMap<V> {
        type Value = Option<BTreeMap<String, V>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> std::result::Result<Self::Value, D2::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> std::result::Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(k) = access.next_key::<String>()? {
                if out.contains_key(&k) {
                    return Err(de::Error::custom(format!("duplicate key `{k}`")));
                }
                let v = access.next_value()?;
                out.insert(k, v);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_option(UniqueMap(std::marker::PhantomData))
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean, list or mapping")
            }
            fn visit_unit<E>(self) -> std::result::Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, b: bool) -> std::result::Result<Value, E> {
                Ok(Value::Bool(b))
            }
            fn visit_i64<E>(self, i: i64) -> std::result::Result<Value, E> {
                Ok(Value::Int(i))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> std::result::Result<Value, E> {
                i64::try_from(u)
                    .map(Value::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, f: f64) -> std::result::Result<Value, E> {
                Ok(Value::Float(f))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Value, E> {
                Ok(Value::str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Value, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element()? {
                    out.push(v);
                }
                Ok(Value::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(k) = a.next_key::<String>()? {
                    if out.contains_key(&k) {
                        return Err(de::Error::custom(format!("duplicate key `{k}`")));
                    }
                    out.insert(k, a.next_value()?);
                }
                Ok(Value::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses YAML text; `origin` names the file in messages.
pub fn parse(text: &str, origin: &str) -> Result<RawSpec> {
    let fail = |line, column, message: String| Error::File {
        path: origin.to_owned(),
        line,
        column,
        message,
    };
    if text.len() > MAX_YAML_BYTES {
        return Err(fail(
            1,
            1,
            format!("is larger than {MAX_YAML_BYTES} bytes; a spec is a small file"),
        ));
    }
    if text.contains('\0') {
        return Err(fail(1, 1, "contains a NUL byte".to_owned()));
    }
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(fail(
            1,
            1,
            format!("has no fields; give at least one of: {}", FIELDS.join(", ")),
        ));
    }
    serde_yaml_ng::from_str::<YamlSpec>(text)
        .map(RawSpec::from)
        .map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            fail(line, column, friendly(&e.to_string()))
        })
}

/// Reads and parses a YAML spec file.
pub fn load(path: &Path) -> Result<RawSpec> {
    let text = std::fs::read(path).map_err(|e| Error::source("spec file", path, e.to_string()))?;
    let text = String::from_utf8(text).map_err(|_| Error::source("spec file", path, "is not UTF-8 text"))?;
    parse(&text, &path.display().to_string())
}

/// serde's message, without the location (reported apart) and with a suggestion for unknown keys.
fn friendly(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if let Some(rest) = msg.split("unknown field `").nth(1) {
        let name = rest.split('`').next().unwrap_or_default();
        let prefix = msg.split("unknown field `").next().unwrap_or_default();
        return format!("{prefix}{}", suggest_field(name));
    }
    msg.replace("expected a sequence", "expected a list of strings")
}

/// The spec as YAML, with the constructor's keys in documentation order. URL credentials are
/// written as `***`: a YAML file is meant to be kept and shared, a token is not (a spec read back
/// from it refuses to build until they are given again).
pub fn dump(spec: &Spec) -> String {
    let map = spec.to_map(true);
    serde_yaml_ng::to_string(&ordered(&map)).expect("a Value map always serialises")
}

fn ordered(map: &Map) -> serde_yaml_ng::Value {
    let mut out = serde_yaml_ng::Mapping::new();
    let known = FIELDS.iter().filter_map(|k| map.get_key_value(*k));
    let others = map.iter().filter(|(k, _)| !FIELDS.contains(&k.as_str()));
    for (k, v) in known.chain(others) {
        out.insert(serde_yaml_ng::Value::String(k.clone()), to_yaml(v));
    }
    serde_yaml_ng::Value::Mapping(out)
}

fn to_yaml(v: &Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Value::Null => Y::Null,
        Value::Bool(b) => Y::Bool(*b),
        Value::Int(i) => Y::Number((*i).into()),
        Value::Float(f) => Y::Number((*f).into()),
        Value::Str(s) => Y::String(s.clone()),
        Value::Bytes(b) => Y::String(data_encoding::HEXLOWER.encode(b)),
        Value::List(items) => Y::Sequence(items.iter().map(to_yaml).collect()),
        Value::Map(m) => ordered(m),
    }
}
