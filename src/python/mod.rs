//! The Python extension module (being written).
