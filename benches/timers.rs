//! Placeholder: the deadline-heap bench lands next.
fn main() {}
