//! The Python extension module `imagespec._core`.

use pyo3::prelude::*;

mod registry;

pyo3::create_exception!(imagespec, ImageSpecError, pyo3::exceptions::PyException);
pyo3::create_exception!(imagespec, SpecError, ImageSpecError);
pyo3::create_exception!(imagespec, SourceError, ImageSpecError);
pyo3::create_exception!(imagespec, RegistryError, ImageSpecError);

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ImageSpecError", py.get_type::<ImageSpecError>())?;
    m.add("SpecError", py.get_type::<SpecError>())?;
    m.add("SourceError", py.get_type::<SourceError>())?;
    m.add("RegistryError", py.get_type::<RegistryError>())?;
    registry::register(m)?;
    Ok(())
}
