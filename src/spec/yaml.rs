//! YAML spec files (being written).
