//! Python objects ↔ core values. Type checks here name the field, since only here are the
//! Python types visible.

use super::spec::Spec as PySpec;
use crate::error::Error;
use crate::redact::redact_userinfo;
use crate::spec::{prefix_field, python_version_of_number, Map, RawBase, RawSpec};
use crate::value::Value;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::collections::BTreeMap;

type Result<T> = std::result::Result<T, Error>;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// `str 'value'` for a message: the type and a short, credential-free repr of a wrong value.
fn shown(obj: &Bound<'_, PyAny>) -> String {
    let repr = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    let mut repr = redact_userinfo(&repr);
    if repr.chars().count() > 60 {
        repr = repr.chars().take(57).collect::<String>() + "...";
    }
    format!("{} {repr}", type_name(obj))
}

fn opt_str(field: &str, obj: &Bound<'_, PyAny>) -> Result<Option<String>> {
    if obj.is_none() {
        return Ok(None);
    }
    str_of(field, obj).map(Some)
}

fn str_of(field: &str, obj: &Bound<'_, PyAny>) -> Result<String> {
    match obj.cast::<PyString>() {
        Ok(s) => s
            .to_cow()
            .map(|c| c.into_owned())
            .map_err(|_| Error::spec(field, "is not valid Unicode text (it has a lone surrogate)")),
        Err(_) => Err(Error::invalid(
            field,
            format!("{field} must be a string or None, got {}", shown(obj)),
        )),
    }
}

/// `python_version` also as a number, as `yaml.safe_load` reads an unquoted `3.11`
/// (see `spec::python_version_of_number`); a warning says when the reading is a guess.
fn opt_python_version(obj: &Bound<'_, PyAny>) -> Result<Option<String>> {
    let number = if obj.is_instance_of::<PyBool>() {
        None
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        Some(f.value())
    } else if obj.is_instance_of::<PyInt>() {
        obj.extract::<i64>().ok().map(|i| i as f64)
    } else {
        None
    };
    let Some(number) = number else {
        return opt_str("python_version", obj);
    };
    let (version, warning) = python_version_of_number(number);
    if let Some(message) = warning {
        let py = obj.py();
        let category = py.get_type::<pyo3::exceptions::PyUserWarning>();
        let message = std::ffi::CString::new(message).unwrap_or_default();
        PyErr::warn(py, &category, &message, 2).map_err(|e| Error::spec("python_version", e.to_string()))?;
    }
    Ok(Some(version))
}

fn items_of<'py>(obj: &Bound<'py, PyAny>) -> Option<Vec<Bound<'py, PyAny>>> {
    if let Ok(list) = obj.cast::<PyList>() {
        return Some(list.iter().collect());
    }
    obj.cast::<PyTuple>().ok().map(|t| t.iter().collect())
}

/// A list (or tuple) of strings; anything else in flytekit's words
/// (flytekit/image_spec/image_spec.py:151-167 at v1.16.24), with what was given and how to fix it.
fn opt_str_list(field: &str, obj: &Bound<'_, PyAny>) -> Result<Option<Vec<String>>> {
    if obj.is_none() {
        return Ok(None);
    }
    let wrong = |detail: String| {
        Error::invalid(
            field,
            format!("{field} must be a list of strings or None, {detail}"),
        )
    };
    let Some(items) = items_of(obj) else {
        let hint = if obj.is_instance_of::<PyString>() {
            "; wrap a single value in a list"
        } else {
            ""
        };
        return Err(wrong(format!("got {}{hint}", shown(obj))));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item.cast::<PyString>() {
            Ok(_) => str_of(&format!("{field}[{i}]"), item),
            Err(_) => Err(wrong(format!("but item {i} is {}", shown(item)))),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn opt_str_map(field: &str, obj: &Bound<'_, PyAny>) -> Result<Option<BTreeMap<String, String>>> {
    if obj.is_none() {
        return Ok(None);
    }
    let wrong = |detail: String| {
        Error::invalid(
            field,
            format!("{field} must be a dictionary of strings to strings or None, {detail}"),
        )
    };
    let dict = obj
        .cast::<PyDict>()
        .map_err(|_| wrong(format!("got {}", shown(obj))))?;
    let mut out = BTreeMap::new();
    for (k, v) in dict.iter() {
        if !k.is_instance_of::<PyString>() {
            return Err(wrong(format!("but key {} is not a string", shown(&k))));
        }
        let key = str_of(field, &k)?;
        if !v.is_instance_of::<PyString>() {
            return Err(wrong(format!("but the value of {key:?} is {}", shown(&v))));
        }
        let val = str_of(&format!("{field}[{key:?}]"), &v)?;
        out.insert(key, val);
    }
    Ok(Some(out))
}

/// Pairs of strings; anything else in flytekit's words (flytekit/image_spec/image_spec.py:169-176 at v1.16.24).
/// flytekit wants tuples; lists are taken too (YAML has no tuples).
fn opt_mounts(field: &str, obj: &Bound<'_, PyAny>) -> Result<Option<Vec<(String, String)>>> {
    if obj.is_none() {
        return Ok(None);
    }
    let wrong = |detail: String| {
        Error::invalid(
            field,
            format!(
                "{field} must be a list of tuples of two strings or None, {detail}; give (secret file, \
                 where the install step sees it) pairs"
            ),
        )
    };
    let items = items_of(obj).ok_or_else(|| wrong(format!("got {}", shown(obj))))?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let pair = items_of(item)
            .filter(|p| p.len() == 2 && p.iter().all(|s| s.is_instance_of::<PyString>()))
            .ok_or_else(|| wrong(format!("but item {i} is {}", shown(item))))?;
        let f = format!("{field}[{i}]");
        out.push((str_of(&f, &pair[0])?, str_of(&f, &pair[1])?));
    }
    Ok(Some(out))
}

/// A JSON-like Python value (str, int, float, bool, None, list, tuple, dict with str keys).
pub fn to_value(field: &str, obj: &Bound<'_, PyAny>) -> Result<Value> {
    if obj.is_none() {
        Ok(Value::Null)
    } else if let Ok(b) = obj.cast::<PyBool>() {
        Ok(Value::Bool(b.is_true()))
    } else if obj.is_instance_of::<PyInt>() {
        obj.extract::<i64>()
            .map(Value::Int)
            .map_err(|_| Error::spec(field, "integer does not fit in 64 bits"))
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        Ok(Value::Float(f.value()))
    } else if obj.is_instance_of::<PyString>() {
        str_of(field, obj).map(Value::Str)
    } else if let Some(items) = items_of(obj) {
        items
            .iter()
            .map(|i| to_value(field, i))
            .collect::<Result<_>>()
            .map(Value::List)
    } else if let Ok(dict) = obj.cast::<PyDict>() {
        value_map(field, dict).map(Value::Map)
    } else {
        Err(Error::spec(
            field,
            format!(
                "values must be strings, numbers, booleans, lists or dicts, got {}",
                type_name(obj)
            ),
        ))
    }
}

fn value_map(field: &str, dict: &Bound<'_, PyDict>) -> Result<Map> {
    let mut out = Map::new();
    for (k, v) in dict.iter() {
        let key = str_of(field, &k)
            .map_err(|_| Error::spec(field, format!("keys must be strings, got {}", type_name(&k))))?;
        out.insert(key.clone(), to_value(&format!("{field}[{key:?}]"), &v)?);
    }
    Ok(out)
}

/// A dict; anything else in flytekit's words (flytekit/image_spec/image_spec.py:178-179 at v1.16.24).
fn opt_value_map(field: &str, obj: &Bound<'_, PyAny>) -> Result<Option<Map>> {
    if obj.is_none() {
        return Ok(None);
    }
    let dict = obj.cast::<PyDict>().map_err(|_| {
        Error::invalid(
            field,
            format!("{field} must be a dictionary or None, got {}", shown(obj)),
        )
    })?;
    value_map(field, dict).map(Some)
}

fn opt_base(obj: &Bound<'_, PyAny>) -> Result<Option<RawBase>> {
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(spec) = obj.cast::<PySpec>() {
        return Ok(Some(RawBase::Built(Box::new(spec.get().inner.clone()))));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let raw = raw_spec(dict).map_err(|e| prefix_field("base_image", e))?;
        return Ok(Some(RawBase::Raw(Box::new(raw))));
    }
    match str_of("base_image", obj) {
        Ok(s) => Ok(Some(RawBase::Name(s))),
        Err(_) => Err(Error::invalid(
            "base_image",
            format!(
                "base_image must be an image reference string, an ImageSpec, a dict of its fields or None, \
                 got {}",
                shown(obj)
            ),
        )),
    }
}

/// The constructor's keyword arguments → RawSpec. Unknown keys are refused with a suggestion.
pub fn raw_spec(fields: &Bound<'_, PyDict>) -> Result<RawSpec> {
    let mut raw = RawSpec::default();
    for (k, v) in fields.iter() {
        let key = str_of("field name", &k)?;
        let f = key.as_str();
        match f {
            "name" => raw.name = opt_str(f, &v)?,
            "python_version" => raw.python_version = opt_python_version(&v)?,
            "builder" => raw.builder = opt_str(f, &v)?,
            "source_root" => raw.source_root = opt_str(f, &v)?,
            "source_copy_mode" => raw.source_copy_mode = opt_str(f, &v)?,
            "env" => raw.env = opt_str_map(f, &v)?,
            "registry" => raw.registry = opt_str(f, &v)?,
            "packages" => raw.packages = opt_str_list(f, &v)?,
            "conda_packages" => raw.conda_packages = opt_str_list(f, &v)?,
            "conda_channels" => raw.conda_channels = opt_str_list(f, &v)?,
            "requirements" => raw.requirements = opt_str(f, &v)?,
            "apt_packages" => raw.apt_packages = opt_str_list(f, &v)?,
            "cuda" => raw.cuda = opt_str(f, &v)?,
            "cudnn" => raw.cudnn = opt_str(f, &v)?,
            "base_image" => raw.base_image = opt_base(&v)?,
            "platform" => raw.platform = opt_str(f, &v)?,
            "pip_index" => raw.pip_index = opt_str(f, &v)?,
            "pip_extra_index_url" => raw.pip_extra_index_url = opt_str_list(f, &v)?,
            "pip_secret_mounts" => raw.pip_secret_mounts = opt_mounts(f, &v)?,
            "pip_extra_args" => raw.pip_extra_args = opt_str(f, &v)?,
            "registry_config" => raw.registry_config = opt_str(f, &v)?,
            "entrypoint" => raw.entrypoint = opt_str_list(f, &v)?,
            "commands" => raw.commands = opt_str_list(f, &v)?,
            "tag_format" => raw.tag_format = opt_str(f, &v)?,
            "copy" => raw.copy = opt_str_list(f, &v)?,
            "python_exec" => raw.python_exec = opt_str(f, &v)?,
            "runtime_packages" => raw.runtime_packages = opt_str_list(f, &v)?,
            "builder_options" => raw.builder_options = opt_value_map(f, &v)?,
            "builder_config" => raw.builder_config = opt_value_map(f, &v)?,
            "project" => raw.project = opt_str(f, &v)?,
            "project_install_mode" => raw.project_install_mode = opt_str(f, &v)?,
            "overrides" => raw.overrides = opt_str_list(f, &v)?,
            "constraints" => raw.constraints = opt_str_list(f, &v)?,
            other => {
                return Err(Error::UnknownField {
                    name: other.to_owned(),
                    hint: crate::spec::field_hint(other),
                })
            }
        }
    }
    Ok(raw)
}

/// A core value as a plain Python object (lists, dicts, str, int, float, bool, None, bytes).
pub fn from_value<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => pyo3::types::PyBytes::new(py, b).into_any(),
        Value::List(items) => PyList::new(
            py,
            items
                .iter()
                .map(|i| from_value(py, i))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        Value::Map(m) => {
            let d = PyDict::new(py);
            for (k, v) in m {
                d.set_item(k, from_value(py, v)?)?;
            }
            d.into_any()
        }
    })
}
