//! Spec identity and content-derived tag (being written).
