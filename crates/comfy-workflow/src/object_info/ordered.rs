//! Reading `/object_info` text with the order of its input dictionaries kept.
//!
//! ComfyUI gives a node's top-level inputs an `input_order`, but not the input dictionaries nested
//! in V3 dynamic inputs (a dynamic combo's options, an autogrow's template): there the order is
//! only the document's key order, which the frontend follows when it adds an option's widgets.
//! A `serde_json::Value` sorts keys, so this reader records each such dictionary's key order as
//! an `input_order` of the same form, which the parser honours wherever it finds one.

use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The input sections whose key order is recorded.
const ORDERED_SECTIONS: [&str; 2] = ["required", "optional"];

/// Parses `text` into a `Value`, adding `input_order` to every object that has `required` or
/// `optional` dictionaries and no `input_order` of its own. Python's `NaN` and `Infinity` tokens
/// are read as `null`, as [`crate::lenient_json`] does.
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    match from_text(text) {
        Ok(value) => Ok(value),
        Err(strict_error) => {
            let rewritten = crate::lenient_json::replace_non_finite_tokens(text);
            if rewritten == text {
                return Err(strict_error);
            }
            from_text(&rewritten)
        }
    }
}

fn from_text(text: &str) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let ordered = Ordered::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(ordered.value)
}

/// A value and, for an object, its keys in document order (each once).
struct Ordered {
    value: Value,
    keys: Vec<String>,
}

impl Ordered {
    fn plain(value: Value) -> Self {
        Ordered {
            value,
            keys: Vec::new(),
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: Error>(self, value: bool) -> Result<Ordered, E> {
        Ok(Ordered::plain(Value::Bool(value)))
    }

    fn visit_i64<E: Error>(self, value: i64) -> Result<Ordered, E> {
        Ok(Ordered::plain(Value::from(value)))
    }

    fn visit_u64<E: Error>(self, value: u64) -> Result<Ordered, E> {
        Ok(Ordered::plain(Value::from(value)))
    }

    fn visit_f64<E: Error>(self, value: f64) -> Result<Ordered, E> {
        Ok(Ordered::plain(
            Number::from_f64(value).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E: Error>(self, value: &str) -> Result<Ordered, E> {
        Ok(Ordered::plain(Value::String(value.to_owned())))
    }

    fn visit_string<E: Error>(self, value: String) -> Result<Ordered, E> {
        Ok(Ordered::plain(Value::String(value)))
    }

    fn visit_unit<E: Error>(self) -> Result<Ordered, E> {
        Ok(Ordered::plain(Value::Null))
    }

    fn visit_none<E: Error>(self) -> Result<Ordered, E> {
        Ok(Ordered::plain(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Ordered, D::Error> {
        deserializer.deserialize_any(OrderedVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Ordered, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = sequence.next_element::<Ordered>()? {
            items.push(item.value);
        }
        Ok(Ordered::plain(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Ordered, A::Error> {
        let mut object = Map::new();
        let mut keys = Vec::new();
        let mut section_orders: Vec<(&str, Vec<String>)> = Vec::new();
        while let Some((key, item)) = entries.next_entry::<String, Ordered>()? {
            if let Some(section) = ORDERED_SECTIONS.iter().find(|section| **section == key)
                && item.value.is_object()
            {
                section_orders.retain(|(name, _)| name != section);
                section_orders.push((section, item.keys));
            }
            // A repeated key keeps its first place and its last value, like `Value` does.
            if object.insert(key.clone(), item.value).is_none() {
                keys.push(key);
            }
        }
        if !section_orders.is_empty() && !object.contains_key("input_order") {
            let order: Map<String, Value> = section_orders
                .into_iter()
                .map(|(section, names)| {
                    let names = names.into_iter().map(Value::String).collect();
                    (section.to_owned(), Value::Array(names))
                })
                .collect();
            object.insert("input_order".to_owned(), Value::Object(order));
        }
        Ok(Ordered {
            value: Value::Object(object),
            keys,
        })
    }
}
