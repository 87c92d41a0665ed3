//! Audio outputs seen without listening: decoded with symphonia (FLAC, WAV, MP3, Ogg Vorbis; pure
//! Rust), measured (duration, sample rate, channels, peak and RMS level in dBFS) and drawn as a
//! waveform PNG a client can show inline. Decoding stops at a duration cap, so an hour-long file
//! costs no more than the cap.

use std::io::Cursor;

use image::ImageEncoder;
use image::codecs::png::PngEncoder;
use schemars::JsonSchema;
use serde::Serialize;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as DecodeError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::media::Preview;

/// Longest stretch of audio decoded for a preview; the facts say when a file is longer.
const MAXIMUM_DECODED_SECONDS: u64 = 20 * 60;
/// The waveform picture.
const WIDTH: u32 = 800;
const HEIGHT: u32 = 160;

/// What an audio file holds, as measured from its samples.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AudioFacts {
    pub duration_seconds: f64,
    pub sample_rate: u32,
    pub channels: usize,
    /// Highest sample magnitude, dB relative to full scale (0 is clipping; silence is -inf, shown
    /// as null).
    pub peak_dbfs: Option<f64>,
    /// Root mean square level over every channel, dBFS.
    pub rms_dbfs: Option<f64>,
    /// True when the file was longer than the decoded stretch (the facts cover that stretch).
    pub truncated: bool,
}

/// The smallest and largest sample of one column of the picture.
#[derive(Debug, Clone, Copy)]
struct Envelope {
    low: f32,
    high: f32,
}

/// Decodes `bytes` and returns its facts and a waveform preview; `None` when it is not audio
/// symphonia can read. `extension` (`flac`, `mp3`...) is a hint for the probe.
pub fn preview(bytes: bytes::Bytes, extension: Option<&str>) -> Option<(AudioFacts, Preview)> {
    let (facts, blocks) = measure(bytes, extension)?;
    let picture = draw(&blocks);
    let mut encoded = Vec::new();
    PngEncoder::new(&mut encoded)
        .write_image(picture.as_raw(), WIDTH, HEIGHT, image::ExtendedColorType::Rgb8)
        .ok()?;
    use base64::Engine as _;
    let preview = Preview {
        base64: base64::engine::general_purpose::STANDARD.encode(&encoded),
        mime_type: "image/png".to_owned(),
        width: WIDTH,
        height: HEIGHT,
        downscaled: true,
        frames: None,
    };
    Some((facts, preview))
}

/// The facts, and the envelope of the decoded stretch in blocks of about 10 ms.
fn measure(bytes: bytes::Bytes, extension: Option<&str>) -> Option<(AudioFacts, Vec<Envelope>)> {
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    if let Some(extension) = extension {
        hint.with_extension(extension);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .ok()?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)?;
    let track_id = track.id;
    let sample_rate = track.codec_params.sample_rate.filter(|rate| *rate > 0)?;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .ok()?;
    let block_frames = (sample_rate / 100).max(1) as usize;
    let frame_cap = MAXIMUM_DECODED_SECONDS * u64::from(sample_rate);
    let mut meter = Meter::new(block_frames);
    let mut channels = 0;
    let mut truncated = false;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(DecodeError::IoError(_) | DecodeError::ResetRequired) => break,
            Err(_) => return None,
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A damaged packet is skipped, as players do.
            Err(DecodeError::DecodeError(_)) => continue,
            Err(_) => break,
        };
        let spec = *decoded.spec();
        channels = spec.channels.count();
        let mut samples = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        samples.copy_interleaved_ref(decoded);
        meter.add(samples.samples(), channels.max(1));
        if meter.frames >= frame_cap {
            truncated = true;
            break;
        }
    }
    if meter.frames == 0 {
        return None;
    }
    let facts = AudioFacts {
        duration_seconds: meter.frames as f64 / f64::from(sample_rate),
        sample_rate,
        channels,
        peak_dbfs: decibels(f64::from(meter.peak)),
        rms_dbfs: decibels((meter.squares / meter.samples as f64).sqrt()),
        truncated,
    };
    Some((facts, meter.finish()))
}

fn decibels(level: f64) -> Option<f64> {
    (level > 0.0).then(|| (20.0 * level.log10() * 10.0).round() / 10.0)
}

/// Running level statistics and the envelope, block by block.
struct Meter {
    block_frames: usize,
    frames: u64,
    samples: u64,
    squares: f64,
    peak: f32,
    blocks: Vec<Envelope>,
    current: Option<Envelope>,
    in_block: usize,
}

impl Meter {
    fn new(block_frames: usize) -> Self {
        Meter {
            block_frames,
            frames: 0,
            samples: 0,
            squares: 0.0,
            peak: 0.0,
            blocks: Vec::new(),
            current: None,
            in_block: 0,
        }
    }

    fn add(&mut self, interleaved: &[f32], channels: usize) {
        for frame in interleaved.chunks(channels) {
            for &sample in frame {
                let sample = if sample.is_finite() {
                    sample.clamp(-1.0, 1.0)
                } else {
                    0.0
                };
                self.squares += f64::from(sample) * f64::from(sample);
                self.peak = self.peak.max(sample.abs());
                let envelope = self.current.get_or_insert(Envelope {
                    low: sample,
                    high: sample,
                });
                envelope.low = envelope.low.min(sample);
                envelope.high = envelope.high.max(sample);
            }
            self.samples += frame.len() as u64;
            self.frames += 1;
            self.in_block += 1;
            if self.in_block == self.block_frames {
                self.blocks.extend(self.current.take());
                self.in_block = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<Envelope> {
        self.blocks.extend(self.current.take());
        self.blocks
    }
}

/// The envelope drawn across the picture: one column per share of the blocks, a centre line.
fn draw(blocks: &[Envelope]) -> image::RgbImage {
    let background = image::Rgb([24, 26, 32]);
    let wave = image::Rgb([96, 190, 255]);
    let axis = image::Rgb([70, 74, 84]);
    let mut picture = image::RgbImage::from_pixel(WIDTH, HEIGHT, background);
    let middle = HEIGHT / 2;
    for x in 0..WIDTH {
        picture.put_pixel(x, middle, axis);
    }
    if blocks.is_empty() {
        return picture;
    }
    let to_row = |level: f32| {
        let scaled = (1.0 - f64::from(level)) * f64::from(HEIGHT - 1) / 2.0;
        scaled.round().clamp(0.0, f64::from(HEIGHT - 1)) as u32
    };
    for x in 0..WIDTH {
        let start = x as usize * blocks.len() / WIDTH as usize;
        let end = ((x as usize + 1) * blocks.len() / WIDTH as usize)
            .max(start + 1)
            .min(blocks.len());
        let Some(column) = blocks.get(start..end) else {
            continue;
        };
        let low = column.iter().map(|block| block.low).fold(f32::MAX, f32::min);
        let high = column.iter().map(|block| block.high).fold(f32::MIN, f32::max);
        for y in to_row(high)..=to_row(low) {
            picture.put_pixel(x, y, wave);
        }
    }
    picture
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::media::sine_wav;

    #[test]
    fn a_sine_is_measured_and_drawn() {
        let (facts, preview) = preview(sine_wav(1.5, 0.5).into(), Some("wav")).expect("a WAV decodes");
        assert!((facts.duration_seconds - 1.5).abs() < 0.01, "{facts:?}");
        assert_eq!((facts.sample_rate, facts.channels), (8000, 2));
        // A sine at half scale: peak -6 dBFS, RMS 3 dB lower.
        assert!((facts.peak_dbfs.expect("peak") + 6.0).abs() < 0.1, "{facts:?}");
        assert!((facts.rms_dbfs.expect("rms") + 9.0).abs() < 0.1, "{facts:?}");
        assert!(!facts.truncated);
        assert_eq!(
            (preview.width, preview.height, preview.mime_type.as_str()),
            (800, 160, "image/png")
        );
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(&preview.base64)
            .expect("base64");
        let picture = image::load_from_memory(&png).expect("a PNG").to_rgb8();
        // The wave reaches a quarter of the height above and below the centre, no further.
        let column: Vec<bool> = (0..HEIGHT)
            .map(|y| picture.get_pixel(400, y).0 == [96, 190, 255])
            .collect();
        let top = column.iter().position(|lit| *lit).expect("drawn");
        let bottom = column.iter().rposition(|lit| *lit).expect("drawn");
        assert!(
            (38..=42).contains(&top) && (117..=121).contains(&bottom),
            "{top}..{bottom}"
        );
    }

    #[test]
    fn silence_and_garbage_are_told_apart() {
        let (facts, _) = preview(sine_wav(0.2, 0.0).into(), Some("wav")).expect("silence decodes");
        assert_eq!((facts.peak_dbfs, facts.rms_dbfs), (None, None));
        assert!(preview(bytes::Bytes::from_static(b"RIFF....WAVEnot really"), Some("wav")).is_none());
        assert!(preview(bytes::Bytes::from_static(b""), None).is_none());
    }
}
