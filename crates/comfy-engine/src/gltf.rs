//! 3D outputs (glTF 2.0: the binary `.glb` that `SaveGLB` writes, or `.gltf` JSON) summarised
//! without rendering: what generator wrote it, how many meshes, primitives, vertices and
//! triangles, materials, textures and animations, and the bounding box of its positions. Only
//! the container and its JSON are read (a few KB at the front of the file); the buffers are not.
//!
//! Hand-read rather than through the `gltf` crate: the container is two length-prefixed chunks,
//! and the counts come from the JSON's accessors; the crate would add a dependency tree for a
//! loader this summary does not need.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// `glTF` in little-endian, the first word of a `.glb`.
const MAGIC: u32 = 0x4654_6C67;
/// The JSON chunk's type, `JSON`.
const JSON_CHUNK: u32 = 0x4E4F_534A;
/// Largest JSON chunk read; real ones are kilobytes.
const MAXIMUM_JSON_BYTES: usize = 16 << 20;
/// glTF's primitive mode for triangle lists (also the default).
const TRIANGLES: u64 = 4;

/// What a glTF file holds.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ModelFacts {
    /// `binary` (`.glb`) or `json` (`.gltf`).
    pub container: &'static str,
    /// The tool that wrote it (`asset.generator`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    pub meshes: usize,
    pub primitives: usize,
    /// Sum of the POSITION accessors' counts.
    pub vertices: u64,
    /// Triangles of triangle-list primitives (indexed or not).
    pub triangles: u64,
    pub materials: usize,
    pub textures: usize,
    pub animations: usize,
    /// Smallest x, y, z of the positions, when the accessors say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounds_min: Option<[f64; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounds_max: Option<[f64; 3]>,
}

/// The facts of a `.glb` or `.gltf` file; `None` for anything else or a broken header.
pub fn facts(bytes: &[u8]) -> Option<ModelFacts> {
    if word(bytes, 0) == Some(MAGIC) {
        let json = binary_json(bytes)?;
        return summarise(&serde_json::from_slice(json).ok()?, "binary");
    }
    if bytes.len() > MAXIMUM_JSON_BYTES {
        return None;
    }
    let document: Value = serde_json::from_slice(bytes).ok()?;
    document.get("asset")?;
    summarise(&document, "json")
}

/// The little-endian word at `offset`.
fn word(bytes: &[u8], offset: usize) -> Option<u32> {
    let slice = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(slice.try_into().ok()?))
}

/// The JSON chunk of a `.glb`: header (magic, version 2, length), then the first chunk.
fn binary_json(bytes: &[u8]) -> Option<&[u8]> {
    let (version, length) = (word(bytes, 4)?, word(bytes, 8)?);
    if version != 2 || usize::try_from(length).ok()? > bytes.len() {
        return None;
    }
    let chunk_length = usize::try_from(word(bytes, 12)?).ok()?;
    if word(bytes, 16)? != JSON_CHUNK || chunk_length > MAXIMUM_JSON_BYTES {
        return None;
    }
    bytes.get(20..20usize.checked_add(chunk_length)?)
}

fn summarise(document: &Value, container: &'static str) -> Option<ModelFacts> {
    let list = |key: &str| document.get(key).and_then(Value::as_array).map_or(0, Vec::len);
    let accessors = document.get("accessors").and_then(Value::as_array);
    let accessor = |index: &Value| {
        index
            .as_u64()
            .and_then(|index| accessors?.get(usize::try_from(index).ok()?))
    };
    let count = |index: &Value| accessor(index).and_then(|accessor| accessor["count"].as_u64());
    let meshes = document.get("meshes").and_then(Value::as_array);
    let primitives: Vec<&Value> = meshes
        .into_iter()
        .flatten()
        .filter_map(|mesh| mesh["primitives"].as_array())
        .flatten()
        .collect();
    let mut facts = ModelFacts {
        container,
        generator: document["asset"]["generator"].as_str().map(str::to_owned),
        meshes: meshes.map_or(0, Vec::len),
        primitives: primitives.len(),
        vertices: 0,
        triangles: 0,
        materials: list("materials"),
        textures: list("textures"),
        animations: list("animations"),
        bounds_min: None,
        bounds_max: None,
    };
    for primitive in primitives {
        let position = &primitive["attributes"]["POSITION"];
        let vertices = count(position).unwrap_or(0);
        facts.vertices = facts.vertices.saturating_add(vertices);
        if primitive["mode"].as_u64().unwrap_or(TRIANGLES) == TRIANGLES {
            let corners = primitive.get("indices").and_then(&count).unwrap_or(vertices);
            facts.triangles = facts.triangles.saturating_add(corners / 3);
        }
        if let Some(accessor) = accessor(position) {
            widen(&mut facts.bounds_min, &accessor["min"], f64::min);
            widen(&mut facts.bounds_max, &accessor["max"], f64::max);
        }
    }
    Some(facts)
}

/// Folds an accessor's `min` or `max` (three numbers) into `bound` with `pick`.
fn widen(bound: &mut Option<[f64; 3]>, corner: &Value, pick: fn(f64, f64) -> f64) {
    let Some([x, y, z]) = corner
        .as_array()
        .and_then(|values| <&[Value; 3]>::try_from(values.as_slice()).ok())
        .map(|values| values.each_ref().map(Value::as_f64))
    else {
        return;
    };
    let (Some(x), Some(y), Some(z)) = (x, y, z) else {
        return;
    };
    *bound = Some(match *bound {
        Some([a, b, c]) => [pick(a, x), pick(b, y), pick(c, z)],
        None => [x, y, z],
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A `.glb` around `document`: header, JSON chunk padded with spaces, an empty BIN chunk.
    fn glb(document: &Value) -> Vec<u8> {
        let mut json = serde_json::to_vec(document).unwrap();
        while !json.len().is_multiple_of(4) {
            json.push(b' ');
        }
        let total = 12 + 8 + json.len() + 8;
        let mut bytes = Vec::new();
        for value in [MAGIC, 2, total as u32, json.len() as u32, JSON_CHUNK] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&0x004E_4942u32.to_le_bytes());
        bytes
    }

    /// Two meshes: an indexed triangle list (a quad) and a non-indexed one (one triangle), as
    /// SaveGLB and Hunyuan3D's exports write them.
    fn document() -> Value {
        json!({
            "asset": {"version": "2.0", "generator": "ComfyUI"},
            "meshes": [
                {"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "material": 0}]},
                {"primitives": [{"attributes": {"POSITION": 2}}, {"attributes": {"POSITION": 2}, "mode": 1}]}
            ],
            "accessors": [
                {"count": 4, "type": "VEC3", "componentType": 5126, "min": [-1.0, -1.0, 0.0], "max": [1.0, 1.0, 0.0]},
                {"count": 6, "type": "SCALAR", "componentType": 5125},
                {"count": 3, "type": "VEC3", "componentType": 5126, "min": [0.0, 0.0, -2.0], "max": [0.5, 3.0, 0.0]}
            ],
            "materials": [{}],
            "textures": [],
        })
    }

    #[test]
    fn a_binary_model_is_counted() {
        let facts = facts(&glb(&document())).expect("a GLB");
        assert_eq!(facts.container, "binary");
        assert_eq!(facts.generator.as_deref(), Some("ComfyUI"));
        assert_eq!((facts.meshes, facts.primitives), (2, 3));
        // 4 + 3 + 3 vertices; 2 triangles from 6 indices, 1 from 3 vertices, none from lines.
        assert_eq!((facts.vertices, facts.triangles), (10, 3));
        assert_eq!((facts.materials, facts.textures, facts.animations), (1, 0, 0));
        assert_eq!(facts.bounds_min, Some([-1.0, -1.0, -2.0]));
        assert_eq!(facts.bounds_max, Some([1.0, 3.0, 0.0]));
    }

    #[test]
    fn a_json_model_is_counted_too() {
        let facts = facts(&serde_json::to_vec(&document()).unwrap()).expect("a glTF");
        assert_eq!(facts.container, "json");
        assert_eq!(facts.triangles, 3);
    }

    #[test]
    fn broken_files_have_no_facts() {
        let whole = glb(&document());
        assert!(facts(&whole[..16]).is_none(), "cut in the header");
        assert!(facts(&whole[..30]).is_none(), "cut in the JSON");
        let mut lying = whole.clone();
        lying[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(facts(&lying).is_none(), "a chunk longer than the file");
        let mut version = whole;
        version[4] = 1;
        assert!(facts(&version).is_none(), "glTF 1.0");
        assert!(facts(b"").is_none());
        assert!(facts(b"{\"not\": \"gltf\"}").is_none());
        assert!(facts(b"\x89PNG\r\n\x1a\n").is_none());
    }
}
