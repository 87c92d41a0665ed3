//! A small, pure reader of a PNG's text chunks (`tEXt`, `zTXt`, `iTXt`), where ComfyUI's `SaveImage`
//! embeds the API `prompt` and the UI `workflow` as JSON. It walks the chunk list with bounds checks
//! on every length, inflates compressed text with a size limit, and never panics on hostile input.

/// The eight bytes every PNG file starts with.
const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Largest inflated text of one chunk; ComfyUI workflows are kilobytes, a few megabytes at most.
pub const MAXIMUM_INFLATED_BYTES_PER_CHUNK: usize = 16 * 1024 * 1024;

/// Largest inflated text of all chunks of one image together: without it, many small compressed
/// chunks each under the per-chunk limit add up to gigabytes.
pub const MAXIMUM_INFLATED_BYTES_TOTAL: usize = 32 * 1024 * 1024;

/// Most text chunks read from one image; `SaveImage` writes two (`prompt` and `workflow`).
pub const MAXIMUM_TEXT_CHUNKS: usize = 1_000;

/// Which chunk type a text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TextChunkKind {
    #[serde(rename = "tEXt")]
    Plain,
    #[serde(rename = "zTXt")]
    Compressed,
    #[serde(rename = "iTXt")]
    International,
}

/// One keyword and its text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TextChunk {
    pub keyword: String,
    pub text: String,
    pub kind: TextChunkKind,
    /// `iTXt` only: the language tag and the translated keyword, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translated_keyword: Option<String>,
}

/// Why a file's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PngTextError {
    #[error("not a PNG file (text chunks exist only in PNG; this looks like {found})")]
    NotPng { found: &'static str },
    #[error("the PNG is truncated: chunk {chunk} at byte {offset} runs past the end of the file")]
    Truncated { chunk: String, offset: usize },
    #[error("{kind} chunk {keyword:?} cannot be inflated: {reason}")]
    Inflate {
        kind: &'static str,
        keyword: String,
        reason: String,
    },
    #[error(
        "the PNG's text inflates to more than {limit} bytes in total: {inflated} bytes before the {kind} chunk {keyword:?} at byte {offset}, which goes past the limit"
    )]
    TooMuchText {
        kind: &'static str,
        keyword: String,
        offset: usize,
        inflated: usize,
        limit: usize,
    },
    #[error("the PNG has {count} text chunks, more than the {limit} this reader accepts")]
    TooManyTextChunks { count: usize, limit: usize },
    #[error("{kind} chunk at byte {offset} is malformed: {reason}")]
    Malformed {
        kind: &'static str,
        offset: usize,
        reason: &'static str,
    },
}

fn describe_format(bytes: &[u8]) -> &'static str {
    match image::guess_format(bytes) {
        Ok(image::ImageFormat::Jpeg) => "a JPEG",
        Ok(image::ImageFormat::WebP) => "a WebP image",
        Ok(image::ImageFormat::Gif) => "a GIF",
        Ok(_) => "another image format",
        Err(_) => "no image format this server knows",
    }
}

/// ISO 8859-1 bytes as text: every byte is the code point of the same value.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| char::from(*byte)).collect()
}

/// Splits at the first NUL: (before, after).
fn split_nul(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let position = bytes.iter().position(|byte| *byte == 0)?;
    Some((&bytes[..position], &bytes[position + 1..]))
}

/// Inflates zlib text into at most what is left of `budget` (and the per-chunk limit), so the
/// buffer never grows past either; what it inflates is taken from the budget.
fn inflate(
    kind: &'static str,
    keyword: &str,
    compressed: &[u8],
    budget: &mut usize,
    offset: usize,
) -> Result<Vec<u8>, PngTextError> {
    let limit = (*budget).min(MAXIMUM_INFLATED_BYTES_PER_CHUNK);
    let inflated = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(compressed, limit);
    let text = inflated.map_err(|error| {
        let too_long = error.status == miniz_oxide::inflate::TINFLStatus::HasMoreOutput;
        if too_long && limit < MAXIMUM_INFLATED_BYTES_PER_CHUNK {
            // The budget, not the chunk's own limit, stopped it.
            return PngTextError::TooMuchText {
                kind,
                keyword: keyword.to_owned(),
                offset,
                inflated: MAXIMUM_INFLATED_BYTES_TOTAL.saturating_sub(*budget),
                limit: MAXIMUM_INFLATED_BYTES_TOTAL,
            };
        }
        PngTextError::Inflate {
            kind,
            keyword: keyword.to_owned(),
            reason: if too_long {
                format!("it inflates to more than {MAXIMUM_INFLATED_BYTES_PER_CHUNK} bytes")
            } else {
                format!("{:?}", error.status)
            },
        }
    })?;
    *budget = budget.saturating_sub(text.len());
    Ok(text)
}

/// Text as ISO 8859-1 without copying when it is ASCII (always, for ComfyUI's JSON).
fn latin1_owned(bytes: Vec<u8>) -> String {
    if bytes.is_ascii() {
        String::from_utf8(bytes).unwrap_or_else(|error| latin1(error.as_bytes()))
    } else {
        latin1(&bytes)
    }
}

/// UTF-8 text without copying when it is valid, replacing invalid sequences otherwise.
fn utf8_owned(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

fn parse_plain(data: &[u8], offset: usize) -> Result<TextChunk, PngTextError> {
    let (keyword, text) = split_nul(data).ok_or(PngTextError::Malformed {
        kind: "tEXt",
        offset,
        reason: "no NUL after the keyword",
    })?;
    Ok(TextChunk {
        keyword: latin1(keyword),
        text: latin1(text),
        kind: TextChunkKind::Plain,
        language: None,
        translated_keyword: None,
    })
}

fn parse_compressed(data: &[u8], offset: usize, budget: &mut usize) -> Result<TextChunk, PngTextError> {
    let malformed = |reason| PngTextError::Malformed {
        kind: "zTXt",
        offset,
        reason,
    };
    let (keyword, rest) = split_nul(data).ok_or(malformed("no NUL after the keyword"))?;
    let keyword = latin1(keyword);
    let (&method, compressed) = rest.split_first().ok_or(malformed("no compression method"))?;
    if method != 0 {
        return Err(malformed("unknown compression method (only 0, zlib, exists)"));
    }
    let text = inflate("zTXt", &keyword, compressed, budget, offset)?;
    Ok(TextChunk {
        keyword,
        text: latin1_owned(text),
        kind: TextChunkKind::Compressed,
        language: None,
        translated_keyword: None,
    })
}

fn parse_international(data: &[u8], offset: usize, budget: &mut usize) -> Result<TextChunk, PngTextError> {
    let malformed = |reason| PngTextError::Malformed {
        kind: "iTXt",
        offset,
        reason,
    };
    let (keyword, rest) = split_nul(data).ok_or(malformed("no NUL after the keyword"))?;
    let keyword = latin1(keyword);
    let [flag, method, rest @ ..] = rest else {
        return Err(malformed("no compression flag and method"));
    };
    let (language, rest) = split_nul(rest).ok_or(malformed("no NUL after the language tag"))?;
    let (translated, text) = split_nul(rest).ok_or(malformed("no NUL after the translated keyword"))?;
    let text = match (flag, method) {
        (0, _) => text.to_vec(),
        (1, 0) => inflate("iTXt", &keyword, text, budget, offset)?,
        (1, _) => return Err(malformed("unknown compression method (only 0, zlib, exists)")),
        _ => return Err(malformed("compression flag is neither 0 nor 1")),
    };
    let optional = |bytes: &[u8]| (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned());
    Ok(TextChunk {
        keyword,
        text: utf8_owned(text),
        kind: TextChunkKind::International,
        language: optional(language),
        translated_keyword: optional(translated),
    })
}

/// One text chunk found in the file, not yet parsed.
struct RawChunk<'a> {
    kind: [u8; 4],
    offset: usize,
    data: &'a [u8],
}

/// The text chunks up to `IEND`, with bounds checks on every length.
fn raw_text_chunks(bytes: &[u8]) -> Result<Vec<RawChunk<'_>>, PngTextError> {
    let mut chunks = Vec::new();
    let mut offset = SIGNATURE.len();
    while offset < bytes.len() {
        let header = bytes.get(offset..offset + 8).ok_or(PngTextError::Truncated {
            chunk: "header".to_owned(),
            offset,
        })?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = [header[4], header[5], header[6], header[7]];
        let start = offset + 8;
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| start.checked_add(length))
            .filter(|end| end.checked_add(4).is_some_and(|with_crc| with_crc <= bytes.len()))
            .ok_or_else(|| PngTextError::Truncated {
                chunk: latin1(&kind),
                offset,
            })?;
        match &kind {
            b"tEXt" | b"zTXt" | b"iTXt" => chunks.push(RawChunk {
                kind,
                offset,
                data: &bytes[start..end],
            }),
            b"IEND" => break,
            _ => {}
        }
        offset = end + 4;
    }
    Ok(chunks)
}

/// Every text chunk of a PNG, in file order. Chunks after `IEND` are ignored; CRCs are not checked
/// (a damaged CRC does not make readable text unreadable). At most [`MAXIMUM_TEXT_CHUNKS`] chunks
/// are read, and compressed ones inflate to [`MAXIMUM_INFLATED_BYTES_TOTAL`] bytes together.
pub fn read_text_chunks(bytes: &[u8]) -> Result<Vec<TextChunk>, PngTextError> {
    if !bytes.starts_with(&SIGNATURE) {
        return Err(PngTextError::NotPng {
            found: describe_format(bytes),
        });
    }
    let raw = raw_text_chunks(bytes)?;
    if raw.len() > MAXIMUM_TEXT_CHUNKS {
        return Err(PngTextError::TooManyTextChunks {
            count: raw.len(),
            limit: MAXIMUM_TEXT_CHUNKS,
        });
    }
    let mut budget = MAXIMUM_INFLATED_BYTES_TOTAL;
    raw.iter()
        .map(|chunk| match &chunk.kind {
            b"zTXt" => parse_compressed(chunk.data, chunk.offset, &mut budget),
            b"iTXt" => parse_international(chunk.data, chunk.offset, &mut budget),
            _ => parse_plain(chunk.data, chunk.offset),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut bytes = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(kind);
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes
    }

    fn png(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend(chunk(b"IHDR", &[0; 13]));
        for chunk in chunks {
            bytes.extend_from_slice(chunk);
        }
        bytes.extend(chunk(b"IEND", &[]));
        bytes
    }

    #[test]
    fn reads_all_three_text_kinds() {
        let compressed = miniz_oxide::deflate::compress_to_vec_zlib(b"{\"3\": {}}", 6);
        let mut ztxt = b"prompt\0\0".to_vec();
        ztxt.extend_from_slice(&compressed);
        let mut itxt = b"workflow\0\x01\0en\0Arbeitsablauf\0".to_vec();
        itxt.extend_from_slice(&miniz_oxide::deflate::compress_to_vec_zlib(
            "{\"é\": 1}".as_bytes(),
            6,
        ));
        let file = png(&[
            chunk(b"tEXt", b"Comment\0caf\xe9"),
            chunk(b"zTXt", &ztxt),
            chunk(b"iTXt", &itxt),
            chunk(b"iTXt", b"plain\0\0\0\0\0utf-8 \xc3\xa9"),
        ]);
        let chunks = read_text_chunks(&file).unwrap();
        assert_eq!(chunks.len(), 4);
        assert_eq!(
            (chunks[0].keyword.as_str(), chunks[0].text.as_str()),
            ("Comment", "café")
        );
        assert_eq!(chunks[1].kind, TextChunkKind::Compressed);
        assert_eq!(chunks[1].text, "{\"3\": {}}");
        assert_eq!(chunks[2].text, "{\"é\": 1}");
        assert_eq!(chunks[2].language.as_deref(), Some("en"));
        assert_eq!(chunks[2].translated_keyword.as_deref(), Some("Arbeitsablauf"));
        assert_eq!(chunks[3].text, "utf-8 é");
        assert_eq!(chunks[3].language, None);
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        assert!(matches!(
            read_text_chunks(b"GIF89a...."),
            Err(PngTextError::NotPng { .. })
        ));
        let mut truncated = png(&[chunk(b"tEXt", b"a\0b")]);
        truncated.truncate(SIGNATURE.len() + 25 + 6);
        assert!(matches!(
            read_text_chunks(&truncated),
            Err(PngTextError::Truncated { .. })
        ));
        let mut huge_length = SIGNATURE.to_vec();
        huge_length.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        huge_length.extend_from_slice(b"tEXt");
        assert!(read_text_chunks(&huge_length).is_err());
        assert!(matches!(
            read_text_chunks(&png(&[chunk(b"tEXt", b"no separator")])),
            Err(PngTextError::Malformed { .. })
        ));
        assert!(matches!(
            read_text_chunks(&png(&[chunk(b"zTXt", b"k\0\0not zlib")])),
            Err(PngTextError::Inflate { .. })
        ));
        assert!(read_text_chunks(&png(&[chunk(b"iTXt", b"k\0")])).is_err());
        // Every prefix of a valid file either reads or fails cleanly.
        let file = png(&[chunk(b"tEXt", b"prompt\0{}")]);
        for length in 0..file.len() {
            let _ = read_text_chunks(&file[..length]);
        }
    }

    /// A zTXt chunk whose text inflates to `size` bytes of spaces.
    fn compressed_chunk(keyword: &str, size: usize) -> Vec<u8> {
        let mut data = keyword.as_bytes().to_vec();
        data.extend_from_slice(&[0, 0]);
        data.extend(miniz_oxide::deflate::compress_to_vec_zlib(&vec![b' '; size], 1));
        chunk(b"zTXt", &data)
    }

    #[test]
    fn total_inflated_text_is_capped_across_chunks() {
        // Five chunks each well under the per-chunk limit, 40 MiB together: the fifth goes past
        // the total and is inflated only as far as the budget left (none), not to its 8 MiB.
        let quarter = MAXIMUM_INFLATED_BYTES_TOTAL / 4;
        assert!(quarter < MAXIMUM_INFLATED_BYTES_PER_CHUNK);
        let one = compressed_chunk("prompt", quarter);
        let file = png(&vec![one; 5]);
        // Not unwrap_err: on failure it would print 40 MiB of text.
        let Err(error) = read_text_chunks(&file) else {
            panic!("40 MiB of text in five chunks was read whole");
        };
        let PngTextError::TooMuchText {
            inflated,
            limit,
            offset,
            ..
        } = &error
        else {
            panic!("expected TooMuchText, got {error:?}");
        };
        assert_eq!(
            (*inflated, *limit),
            (MAXIMUM_INFLATED_BYTES_TOTAL, MAXIMUM_INFLATED_BYTES_TOTAL)
        );
        let fifth = SIGNATURE.len() + 25 + 4 * compressed_chunk("prompt", quarter).len();
        assert_eq!(*offset, fifth);
        assert!(
            error
                .to_string()
                .contains(&MAXIMUM_INFLATED_BYTES_TOTAL.to_string()),
            "{error}"
        );
        // Exactly the total still reads.
        assert_eq!(
            read_text_chunks(&png(&vec![compressed_chunk("prompt", quarter); 4]))
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn one_chunk_inflates_no_further_than_the_budget_left() {
        // 1 KiB left: a 64 KiB chunk fails with the total limit, although it is far under the
        // per-chunk one, so its buffer never grew past the budget.
        let mut budget = 1024;
        let mut data = miniz_oxide::deflate::compress_to_vec_zlib(&[b'x'; 64 * 1024], 1);
        let error = inflate("zTXt", "prompt", &data, &mut budget, 0).unwrap_err();
        assert!(
            matches!(error, PngTextError::TooMuchText { inflated, .. } if inflated == MAXIMUM_INFLATED_BYTES_TOTAL - 1024),
            "{error:?}"
        );
        data = miniz_oxide::deflate::compress_to_vec_zlib(&[b'x'; 1000], 1);
        let text = inflate("zTXt", "prompt", &data, &mut budget, 0).unwrap();
        assert_eq!((text.len(), budget), (1000, 24));
    }

    #[test]
    fn text_chunk_count_is_capped() {
        let many = vec![chunk(b"tEXt", b"k\0v"); MAXIMUM_TEXT_CHUNKS + 1];
        assert_eq!(
            read_text_chunks(&png(&many)),
            Err(PngTextError::TooManyTextChunks {
                count: MAXIMUM_TEXT_CHUNKS + 1,
                limit: MAXIMUM_TEXT_CHUNKS
            })
        );
        assert_eq!(
            read_text_chunks(&png(&many[1..])).unwrap().len(),
            MAXIMUM_TEXT_CHUNKS
        );
    }
}
