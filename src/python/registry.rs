//! `_core.check`, `_core.check_local` and `_core.inspect`: registry calls with the GIL released.

use super::interrupt::block_on;
use super::options::Keywords;
use super::results::CheckResult;
use crate::registry::{self, Options};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::time::Duration;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(check_local, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    Ok(())
}

fn seconds(name: &str, v: f64) -> PyResult<Duration> {
    if !v.is_finite() || v <= 0.0 || v > 1e9 {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{name} must be a positive number of seconds"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The options of a registry check: the stub's `CheckArgs`, with its defaults.
fn check_options(kw: &mut Keywords<'_>) -> PyResult<Options> {
    let platforms: Option<Vec<String>> = kw.take("platforms", None)?;
    let registry_config: Option<PathBuf> = kw.take("registry_config", None)?;
    let insecure: Option<Vec<String>> = kw.take("insecure", None)?;
    let use_cache: bool = kw.take("use_cache", true)?;
    let timeout: f64 = kw.take("timeout", 10.0)?;
    let concurrency: usize = kw.take("concurrency", 16)?;
    let cache_ttl: f64 = kw.take("cache_ttl", 86400.0)?;
    let cache_dir: Option<PathBuf> = kw.take("cache_dir", None)?;
    let retries: u32 = kw.take("retries", 3)?;
    Ok(Options {
        platforms: platforms.unwrap_or_default(),
        registry_config,
        insecure: insecure.unwrap_or_default(),
        use_cache,
        cache_ttl: seconds("cache_ttl", cache_ttl)?,
        cache_dir,
        timeout: seconds("timeout", timeout)?,
        concurrency: concurrency.clamp(1, 256),
        retries: retries.min(10),
        ..Options::default()
    })
}

/// Checks which of `refs` exist in their registries; one dict per reference, in order.
#[pyfunction]
#[pyo3(signature = (refs, **options))]
fn check<'py>(
    py: Python<'py>,
    refs: Vec<String>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Vec<CheckResult>> {
    let mut kw = Keywords::new(py, "check()", options)?;
    let opts = check_options(&mut kw)?;
    kw.finish()?;
    let results = block_on(py, async move { registry::check(&refs, &opts).await })?;
    Ok(results.into_iter().map(CheckResult::from).collect())
}

/// Checks which of `names` the local engine (Docker socket, else podman) has.
#[pyfunction]
#[pyo3(signature = (names, *, timeout=10.0))]
fn check_local(py: Python<'_>, names: Vec<String>, timeout: f64) -> PyResult<Vec<CheckResult>> {
    let timeout = seconds("timeout", timeout)?;
    let results = block_on(py, async move { registry::check_local(&names, timeout).await })?;
    Ok(results.into_iter().map(CheckResult::from).collect())
}

/// The config of an image in its registry: `(manifest digest, config as JSON text)`.
#[pyfunction]
#[pyo3(signature = (reference, *, platform=None, registry_config=None, insecure=None, timeout=10.0))]
fn inspect(
    py: Python<'_>,
    reference: String,
    platform: Option<String>,
    registry_config: Option<PathBuf>,
    insecure: Option<Vec<String>>,
    timeout: f64,
) -> PyResult<(String, String)> {
    let opts = Options {
        platforms: platform.into_iter().collect(),
        registry_config,
        insecure: insecure.unwrap_or_default(),
        use_cache: false,
        timeout: seconds("timeout", timeout)?,
        ..Options::default()
    };
    let found = block_on(py, async move { registry::inspect(&reference, &opts).await })?;
    Ok((found.digest, found.config.to_string()))
}
