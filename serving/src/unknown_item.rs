//! An item id a request names that the served model does not know, with the request field
//! that held it: refused the same way by both services.

use crate::quote::quote;

/// An unknown item id and the request field that held it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: unknown item id '{}'", quote(.id))]
pub struct UnknownItem {
    /// Which request field held it.
    pub field: String,
    /// The raw id.
    pub id: String,
}

impl UnknownItem {
    /// The id `raw`, found in the request field `field`.
    pub fn new(field: &str, raw: &str) -> UnknownItem {
        UnknownItem {
            field: field.to_string(),
            id: raw.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UnknownItem;

    #[test]
    fn the_message_names_the_field_and_quotes_the_id() {
        let error = UnknownItem::new("exclude_items", "i42");
        assert_eq!(error.to_string(), "exclude_items: unknown item id 'i42'");
        let long = UnknownItem::new("query.recent_items", &"x".repeat(1000));
        assert!(long.to_string().ends_with("... (1000 bytes)'"), "{long}");
    }
}
