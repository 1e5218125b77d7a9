//! placeholder (being written)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    EmptyDecimal,
}
impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "x")
    }
}
impl std::error::Error for DecodeError {}
