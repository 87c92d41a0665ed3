//! MP4 video outputs (H.264 in ISO BMFF: what ComfyUI's `SaveVideo` writes through PyAV) as one
//! still, the same contact sheet as an animation's, with the facts a caller asks of a video:
//! frames, size, duration and rate. The container is read with `mp4-atom` and the frames are
//! decoded by Cisco's OpenH264, one sample at a time, keeping only the thumbnails of the frames
//! on the sheet. Decoding starts again at the key frame before each chosen frame when that skips
//! samples, and stops after a bounded number of samples and pixels, so a long clip costs bounded
//! time: the sheet of a longer clip with few key frames covers its first part.

use std::iter::Peekable;

use image::{DynamicImage, RgbaImage};
use mp4_atom::{Atom, Avc1, Codec, DecodeAtom, DecodeMaybe, Header, Moov, Stbl, StszSamples};
use openh264::OpenH264API;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use schemars::JsonSchema;
use serde::Serialize;

use crate::animation::{self, MAXIMUM_SIDE};

/// Samples decoded at most for one sheet (about 40 s at 24 fps when every one is needed).
const MAXIMUM_DECODED_SAMPLES: usize = 1_000;
/// Pixels decoded at most for one sheet, since decoding time follows them: 500 frames of 720p
/// (about 4 s in a debug build, where one takes 8 ms; less in release), 220 of 1080p.
const MAXIMUM_DECODED_PIXELS: u64 = 500 * 1280 * 720;
/// Longest sample table read (11 hours at 25 fps); a longer one is refused.
const MAXIMUM_SAMPLES: usize = 1_000_000;
/// What goes before each NAL unit in the stream the decoder reads (Annex B).
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// What a video holds, from its container: the track the sheet was made from.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VideoFacts {
    /// Frames in the track (its samples), whether or not each was decoded.
    pub frames: usize,
    /// In pixels, as the track's sample description gives them.
    pub width: u32,
    pub height: u32,
    /// The sum of the frames' durations.
    pub duration_seconds: f64,
    /// The average rate over the clip; `None` when the track gives no duration.
    pub frames_per_second: Option<f64>,
}

/// One coded frame: where it lies in the file, and whether decoding may start at it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start: usize,
    length: usize,
    key: bool,
}

/// The first H.264 track of a file, as far as decoding it needs.
#[derive(Debug)]
struct Track {
    width: u32,
    height: u32,
    /// The sequence and picture parameter sets, in Annex B, fed to every new decoder.
    parameter_sets: Vec<u8>,
    /// Bytes of the length before each NAL unit in a sample (1 to 4).
    length_size: usize,
    /// In decode order.
    samples: Vec<Sample>,
    timescale: u32,
    /// In `timescale` units.
    duration: u64,
}

/// A contact sheet of an MP4's first H.264 track (frames taken evenly from the first to the
/// last), with its facts; `None` for anything else, or a file that is damaged or cut short.
pub fn contact_sheet(bytes: &[u8]) -> Option<(DynamicImage, VideoFacts)> {
    let track = Track::read(bytes)?;
    let frames = decode_frames(bytes, &track, &animation::spread(track.samples.len()));
    if frames.is_empty() {
        return None;
    }
    Some((animation::tile(&frames), track.facts()))
}

impl Track {
    /// The first track whose samples are `avc1`; every sample must lie inside `bytes`.
    fn read(bytes: &[u8]) -> Option<Track> {
        let movie = movie(bytes)?;
        let (trak, avc1) =
            movie
                .trak
                .iter()
                .find_map(|trak| match trak.mdia.minf.stbl.stsd.codecs.first()? {
                    Codec::Avc1(avc1) => Some((trak, avc1)),
                    _ => None,
                })?;
        let (width, height) = (u32::from(avc1.visual.width), u32::from(avc1.visual.height));
        if width == 0 || height == 0 || width > MAXIMUM_SIDE || height > MAXIMUM_SIDE {
            return None;
        }
        let stbl = &trak.mdia.minf.stbl;
        let duration = stbl
            .stts
            .entries
            .iter()
            .map(|entry| u64::from(entry.sample_count).saturating_mul(u64::from(entry.sample_delta)))
            .fold(0, u64::saturating_add);
        Some(Track {
            width,
            height,
            parameter_sets: parameter_sets(avc1),
            length_size: usize::from(avc1.avcc.length_size),
            samples: samples(stbl, bytes.len())?,
            timescale: trak.mdia.mdhd.timescale,
            duration,
        })
    }

    fn facts(&self) -> VideoFacts {
        let frames = self.samples.len();
        let duration_seconds = if self.timescale == 0 {
            0.0
        } else {
            self.duration as f64 / f64::from(self.timescale)
        };
        VideoFacts {
            frames,
            width: self.width,
            height: self.height,
            duration_seconds,
            frames_per_second: (duration_seconds > 0.0).then(|| frames as f64 / duration_seconds),
        }
    }

    /// How many samples one sheet may decode, within both bounds.
    fn decoding_budget(&self) -> usize {
        let pixels = u64::from(self.width) * u64::from(self.height);
        let affordable = usize::try_from(MAXIMUM_DECODED_PIXELS / pixels).unwrap_or(usize::MAX);
        affordable.clamp(1, MAXIMUM_DECODED_SAMPLES)
    }

    /// The last key frame at or before sample `index` (the first sample when none is marked).
    fn key_before(&self, index: usize) -> usize {
        (0..=index)
            .rev()
            .find(|&candidate| self.samples.get(candidate).is_some_and(|sample| sample.key))
            .unwrap_or(0)
    }

    /// Sample `index` as the decoder reads it: each NAL unit behind a start code instead of its
    /// length; `None` when the lengths do not add up to the sample.
    fn packet(&self, bytes: &[u8], index: usize) -> Option<Vec<u8>> {
        let sample = self.samples.get(index)?;
        let mut rest = bytes.get(sample.start..sample.start.checked_add(sample.length)?)?;
        let mut packet = Vec::with_capacity(rest.len() + 4 * START_CODE.len());
        while !rest.is_empty() {
            let (length, after) = rest.split_at_checked(self.length_size)?;
            let length = length
                .iter()
                .fold(0, |sum: usize, &byte| sum << 8 | usize::from(byte));
            let (unit, after) = after.split_at_checked(length)?;
            packet.extend_from_slice(&START_CODE);
            packet.extend_from_slice(unit);
            rest = after;
        }
        Some(packet)
    }
}

/// The `moov` box of a file that starts with `ftyp`, wherever it lies among the top-level boxes
/// (PyAV writes it after the media data).
fn movie(bytes: &[u8]) -> Option<Moov> {
    if bytes.get(4..8) != Some(b"ftyp".as_slice()) {
        return None;
    }
    let mut rest = bytes;
    while let Ok(Some(header)) = Header::decode_maybe(&mut rest) {
        if header.kind == Moov::KIND {
            return Moov::decode_atom(&header, &mut rest).ok();
        }
        rest = rest.get(header.size.unwrap_or(rest.len())..)?;
    }
    None
}

fn parameter_sets(avc1: &Avc1) -> Vec<u8> {
    let avcc = &avc1.avcc;
    let mut stream = Vec::new();
    for unit in avcc
        .sequence_parameter_sets
        .iter()
        .chain(&avcc.picture_parameter_sets)
    {
        stream.extend_from_slice(&START_CODE);
        stream.extend_from_slice(unit);
    }
    stream
}

/// Where each sample lies, in decode order: chunks from `stco`/`co64`, samples per chunk from
/// `stsc`, sizes from `stsz`, key frames from `stss` (every sample when it is absent).
fn samples(stbl: &Stbl, file_length: usize) -> Option<Vec<Sample>> {
    let sizes = &stbl.stsz.samples;
    let count = match sizes {
        StszSamples::Identical { count, .. } => *count as usize,
        StszSamples::Different { sizes } => sizes.len(),
    };
    let size_of = |index: usize| match sizes {
        StszSamples::Identical { size, .. } => Some(*size),
        StszSamples::Different { sizes } => sizes.get(index).copied(),
    };
    if count == 0 || count > MAXIMUM_SAMPLES {
        return None;
    }
    let chunks = chunk_offsets(stbl)?;
    let runs = &stbl.stsc.entries;
    let every_sample_is_key = stbl.stss.is_none();
    let mut samples = Vec::new();
    for (run, entry) in runs.iter().enumerate() {
        let first = entry.first_chunk as usize;
        let end = runs
            .get(run + 1)
            .map_or(chunks.len() + 1, |next| next.first_chunk as usize);
        for chunk in first..end.min(chunks.len() + 1) {
            let mut offset = *chunks.get(chunk.checked_sub(1)?)?;
            for _ in 0..entry.samples_per_chunk.min((count - samples.len()) as u32) {
                let length = size_of(samples.len())?;
                let end = offset.checked_add(u64::from(length))?;
                if end > file_length as u64 {
                    return None;
                }
                samples.push(Sample {
                    start: offset as usize,
                    length: length as usize,
                    key: every_sample_is_key,
                });
                offset = end;
            }
        }
    }
    if samples.len() != count {
        return None;
    }
    for number in stbl.stss.iter().flat_map(|stss| &stss.entries) {
        let index = (*number as usize).checked_sub(1);
        if let Some(sample) = index.and_then(|index| samples.get_mut(index)) {
            sample.key = true;
        }
    }
    Some(samples)
}

fn chunk_offsets(stbl: &Stbl) -> Option<Vec<u64>> {
    match (&stbl.stco, &stbl.co64) {
        (Some(stco), _) => Some(stco.entries.iter().map(|&offset| u64::from(offset)).collect()),
        (None, Some(co64)) => Some(co64.entries.clone()),
        (None, None) => None,
    }
}

/// A decoder that has read the track's parameter sets. It keeps frames back until their turn
/// in presentation order (B-frames), so its frames come out in the order they are shown.
fn new_decoder(track: &Track) -> Option<Decoder> {
    let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
    let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), config).ok()?;
    decoder.decode(&track.parameter_sets).ok()?;
    Some(decoder)
}

/// Thumbnails of the frames at `wanted` (increasing indices, in presentation order). Decoding
/// starts again at the key frame before the next wanted frame whenever that key frame lies ahead:
/// a key frame (IDR) is shown after every frame decoded before it, so the decoder's first frame
/// from there is the key frame's own index. A sample that does not decode is skipped.
fn decode_frames(bytes: &[u8], track: &Track, wanted: &[usize]) -> Vec<RgbaImage> {
    let mut kept = Vec::new();
    let mut wanted = wanted.iter().copied().peekable();
    let mut decoder = None;
    let (mut next_sample, mut next_frame, mut budget) = (0, 0, track.decoding_budget());
    while let Some(&target) = wanted.peek() {
        let key = track.key_before(target);
        if decoder.is_none() || key > next_sample {
            decoder = new_decoder(track);
            (next_sample, next_frame) = (key, key);
        }
        let Some(decoder) = decoder.as_mut() else {
            break;
        };
        if next_sample >= track.samples.len() {
            // The end: the frames the decoder still holds come out, in order.
            for frame in decoder.flush_remaining().unwrap_or_default() {
                take(&frame, next_frame, &mut wanted, &mut kept);
                next_frame += 1;
            }
            break;
        }
        if budget == 0 {
            break;
        }
        budget -= 1;
        let packet = track.packet(bytes, next_sample);
        next_sample += 1;
        if let Some(Ok(Some(frame))) = packet.map(|packet| decoder.decode(&packet)) {
            take(&frame, next_frame, &mut wanted, &mut kept);
            next_frame += 1;
        }
    }
    kept
}

/// Keeps the thumbnail of frame `index` when it is the next one wanted.
fn take(
    frame: &DecodedYUV<'_>,
    index: usize,
    wanted: &mut Peekable<impl Iterator<Item = usize>>,
    kept: &mut Vec<RgbaImage>,
) {
    if wanted.next_if_eq(&index).is_some() {
        kept.extend(thumbnail(frame));
    }
}

fn thumbnail(frame: &DecodedYUV<'_>) -> Option<RgbaImage> {
    let (width, height) = frame.dimensions();
    let side = |length: usize| {
        u32::try_from(length)
            .ok()
            .filter(|&side| side > 0 && side <= MAXIMUM_SIDE)
    };
    let (columns, rows) = (side(width)?, side(height)?);
    let mut pixels = vec![0; width * height * 4];
    frame.write_rgba8(&mut pixels);
    Some(animation::thumbnail(RgbaImage::from_raw(columns, rows, pixels)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::animation::spread;
    use image::ImageEncoder;
    use mp4_atom::{
        Avcc, Dinf, Dref, DrefEntry, Encode, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Minf, Mvhd, Stco, Stsc, StscEntry,
        Stsd, Stss, Stsz, Stts, SttsEntry, Tkhd, Trak, Url, Visual, Vmhd,
    };
    use openh264::encoder::{Encoder, EncoderConfig, FrameType, IntraFramePeriod, RateControlMode};
    use openh264::formats::{RgbSliceU8, YUVBuffer};

    const WIDTH: u16 = 64;
    const HEIGHT: u16 = 48;
    /// 24 frames per second, in the time base PyAV uses for that rate.
    const TIMESCALE: u32 = 12_288;
    const FRAME_TICKS: u32 = 512;

    /// An encoded clip: each sample as MP4 stores it (NAL units behind their lengths) with
    /// whether it is a key frame, and the sequence and picture parameter sets.
    struct Clip {
        samples: Vec<(Vec<u8>, bool)>,
        sps: Vec<u8>,
        pps: Vec<u8>,
    }

    /// H.264 of `frames` solid greys, frame `i` at [`level`]`(i)`, a key frame every 10.
    fn grey_ramp(frames: usize) -> Clip {
        grey_frames(frames, 10)
    }

    /// 16 + 9 i, starting again at 16 after 232 (every 25 frames).
    fn level(frame: usize) -> u8 {
        (16 + frame % 25 * 9) as u8
    }

    fn grey_frames(frames: usize, key_every: u32) -> Clip {
        let config = EncoderConfig::new()
            .skip_frames(false)
            .rate_control_mode(RateControlMode::Off)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(key_every));
        let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config).unwrap();
        let mut clip = Clip {
            samples: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
        };
        for index in 0..frames {
            let level = level(index);
            let rgb = vec![level; usize::from(WIDTH) * usize::from(HEIGHT) * 3];
            let source = RgbSliceU8::new(&rgb, (usize::from(WIDTH), usize::from(HEIGHT)));
            let encoded = encoder.encode(&YUVBuffer::from_rgb8_source(source)).unwrap();
            let key = encoded.frame_type() == FrameType::IDR;
            let mut sample = Vec::new();
            for unit in openh264::nal_units(&encoded.to_vec()) {
                // Each unit starts with its start code and may end with the next one's zeros.
                let start = unit.iter().position(|&byte| byte == 1).unwrap() + 1;
                let end = unit.iter().rposition(|&byte| byte != 0).unwrap() + 1;
                let unit = &unit[start..end];
                match unit[0] & 0x1f {
                    7 => clip.sps = unit.to_vec(),
                    8 => clip.pps = unit.to_vec(),
                    _ => {
                        sample.extend_from_slice(&(unit.len() as u32).to_be_bytes());
                        sample.extend_from_slice(unit);
                    }
                }
            }
            clip.samples.push((sample, key));
        }
        clip
    }

    /// `clip` in an MP4 laid out as PyAV writes one (`ftyp`, `mdat`, then `moov`), or with the
    /// `moov` first (as `-movflags faststart` does); its samples in chunks of 7 and one of the rest.
    fn mp4(clip: &Clip, moov_first: bool) -> Vec<u8> {
        let mut file = encoded(&Ftyp {
            major_brand: b"isom".into(),
            minor_version: 512,
            compatible_brands: vec![b"isom".into(), b"avc1".into(), b"mp41".into()],
        });
        let moov_length = encoded(&moov_of(clip, chunk_offsets_from(clip, 0))).len();
        let data_start = file.len() + 8 + if moov_first { moov_length } else { 0 };
        let moov = encoded(&moov_of(clip, chunk_offsets_from(clip, data_start as u32)));
        let data: Vec<u8> = clip
            .samples
            .iter()
            .flat_map(|(sample, _)| sample.clone())
            .collect();
        if moov_first {
            file.extend_from_slice(&moov);
        }
        Mdat { data }.encode(&mut file).unwrap();
        if !moov_first {
            file.extend_from_slice(&moov);
        }
        file
    }

    fn encoded(atom: &impl Encode) -> Vec<u8> {
        let mut bytes = Vec::new();
        atom.encode(&mut bytes).unwrap();
        bytes
    }

    fn chunk_offsets_from(clip: &Clip, start: u32) -> Vec<u32> {
        let mut offset = start;
        let mut chunks = Vec::new();
        for chunk in clip.samples.chunks(7) {
            chunks.push(offset);
            offset += chunk.iter().map(|(sample, _)| sample.len() as u32).sum::<u32>();
        }
        chunks
    }

    fn moov_of(clip: &Clip, chunks: Vec<u32>) -> Moov {
        let count = clip.samples.len() as u32;
        let duration = u64::from(count * FRAME_TICKS);
        let stbl = Stbl {
            stsd: Stsd {
                codecs: vec![avc1(clip)],
            },
            stts: Stts {
                entries: vec![SttsEntry {
                    sample_count: count,
                    sample_delta: FRAME_TICKS,
                }],
            },
            stss: Some(Stss {
                entries: (1..=count)
                    .filter(|&number| clip.samples[number as usize - 1].1)
                    .collect(),
            }),
            stsc: Stsc {
                entries: chunk_runs(count, chunks.len() as u32),
            },
            stsz: Stsz {
                samples: StszSamples::Different {
                    sizes: clip
                        .samples
                        .iter()
                        .map(|(sample, _)| sample.len() as u32)
                        .collect(),
                },
            },
            stco: Some(Stco { entries: chunks }),
            ..Default::default()
        };
        let minf = Minf {
            vmhd: Some(Vmhd::default()),
            dinf: Dinf {
                dref: Dref {
                    entries: vec![DrefEntry::Url(Url {
                        location: String::new(),
                    })],
                },
            },
            stbl,
            ..Default::default()
        };
        let mdia = Mdia {
            mdhd: Mdhd {
                timescale: TIMESCALE,
                duration,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "VideoHandler".into(),
            },
            minf,
        };
        let tkhd = Tkhd {
            track_id: 1,
            enabled: true,
            in_movie: true,
            width: WIDTH.into(),
            height: HEIGHT.into(),
            ..Default::default()
        };
        Moov {
            mvhd: Mvhd {
                timescale: TIMESCALE,
                duration,
                next_track_id: 2,
                ..Default::default()
            },
            trak: vec![Trak {
                tkhd,
                mdia,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Chunks of 7 samples, the last with the rest.
    fn chunk_runs(count: u32, chunks: u32) -> Vec<StscEntry> {
        let run = |first_chunk, samples_per_chunk| StscEntry {
            first_chunk,
            samples_per_chunk,
            sample_description_index: 1,
        };
        let last = run(chunks, (count - 1) % 7 + 1);
        if chunks > 1 {
            vec![run(1, 7), last]
        } else {
            vec![last]
        }
    }

    fn avc1(clip: &Clip) -> Codec {
        Avc1 {
            visual: Visual {
                data_reference_index: 1,
                width: WIDTH,
                height: HEIGHT,
                ..Default::default()
            },
            avcc: Avcc::new(&clip.sps, &clip.pps).unwrap(),
            ..Default::default()
        }
        .into()
    }

    /// The grey level at the centre of each filled cell of a sheet of `WIDTH` x `HEIGHT` frames.
    fn cell_levels(sheet: &DynamicImage) -> Vec<u8> {
        let sheet = sheet.to_rgba8();
        let (cell_width, cell_height) = (u32::from(WIDTH), u32::from(HEIGHT));
        let cells = (sheet.width() - 4) / (cell_width + 4) * ((sheet.height() - 4) / (cell_height + 4));
        (0..cells)
            .map(|cell| {
                let x = 4 + (cell % 3) * (cell_width + 4) + cell_width / 2;
                let y = 4 + (cell / 3) * (cell_height + 4) + cell_height / 2;
                sheet.get_pixel(x, y).0
            })
            .filter(|&pixel| pixel != [24, 26, 32, 255])
            .map(|pixel| pixel[0])
            .collect()
    }

    #[test]
    fn frames_are_taken_evenly_from_first_to_last() {
        let clip = grey_ramp(25);
        assert!(
            clip.samples.iter().filter(|(_, key)| *key).count() >= 3,
            "key frames every 10"
        );
        let (sheet, facts) = contact_sheet(&mp4(&clip, false)).expect("an H.264 MP4");
        // 9 cells of 64 x 48 in 3 x 3 with 4-pixel gaps.
        assert_eq!((sheet.width(), sheet.height()), (3 * 64 + 16, 3 * 48 + 16));
        let levels = cell_levels(&sheet);
        // Frames 0, 3, 6 ... 24 were encoded at 16 + 9 i: 16, 43, 70 ... 232 (lossy, so near).
        assert_eq!(level(24), 232);
        assert!(levels[0] < 30, "the first frame: {levels:?}");
        assert!(
            levels.windows(2).all(|pair| pair[1] > pair[0] + 10),
            "in order: {levels:?}"
        );
        assert!(levels[8] > 215, "the last frame: {levels:?}");
        assert_eq!(
            facts,
            VideoFacts {
                frames: 25,
                width: 64,
                height: 48,
                duration_seconds: 25.0 / 24.0,
                frames_per_second: Some(24.0),
            }
        );
    }

    #[test]
    fn a_clip_shorter_than_the_sheet_shows_every_frame() {
        let (sheet, facts) = contact_sheet(&mp4(&grey_ramp(4), false)).expect("an H.264 MP4");
        assert_eq!(facts.frames, 4);
        // 4 cells: a row of 3 and one below.
        assert_eq!((sheet.width(), sheet.height()), (3 * 64 + 16, 2 * 48 + 12));
        let levels = cell_levels(&sheet);
        assert!(levels[..4].windows(2).all(|pair| pair[1] > pair[0]), "{levels:?}");
    }

    /// A long clip with a key frame every 300: reaching the 9 frames from the key frame before
    /// each decodes 950 samples, within the 1000 allowed, where decoding all 1100 would not; read
    /// as if only its first frame were a key frame, the sheet stops where the allowance does.
    #[test]
    fn decoding_skips_to_key_frames_and_stops_at_its_bound() {
        let mut clip = grey_frames(1_100, 300);
        let wanted = spread(1_100);
        let near = |levels: &[u8], frames: &[usize]| {
            levels
                .iter()
                .zip(frames)
                .all(|(&seen, &frame)| seen.abs_diff(level(frame)) <= 8)
        };
        let (sheet, facts) = contact_sheet(&mp4(&clip, false)).expect("an H.264 MP4");
        assert_eq!(facts.frames, 1_100);
        let levels = cell_levels(&sheet);
        assert_eq!(levels.len(), 9);
        assert!(near(&levels, &wanted), "frames {wanted:?}: {levels:?}");
        for (_, key) in clip.samples.iter_mut().skip(1) {
            *key = false;
        }
        let (sheet, _) = contact_sheet(&mp4(&clip, false)).expect("an H.264 MP4");
        let levels = cell_levels(&sheet);
        assert_eq!(levels.len(), 8, "the last frame is past 1000 samples: {levels:?}");
        assert!(near(&levels, &wanted), "frames {wanted:?}: {levels:?}");
    }

    /// The content decides: an MP4 is previewed as a JPEG sheet whatever it is called, within
    /// the budget, and says how many frames it has.
    #[test]
    fn previews_of_videos_are_sheets_within_the_budget() {
        let file = mp4(&grey_ramp(25), false);
        for named in ["video/mp4", "application/octet-stream", "image/png"] {
            let preview = crate::media::preview(&file, named, 700_000).expect("a sheet");
            assert_eq!(preview.mime_type, "image/jpeg");
            assert_eq!((preview.width, preview.height), (3 * 64 + 16, 3 * 48 + 16));
            assert_eq!(preview.frames, Some(25));
        }
        let (facts, preview) = crate::media::video_preview(&file, 2_000).expect("a smaller sheet");
        assert!(preview.base64.len() <= 2_000);
        assert!(preview.width < 3 * 64 + 16);
        assert_eq!(facts.frames, 25);
    }

    #[test]
    fn damaged_cut_and_other_files_have_no_sheet() {
        let clip = grey_ramp(12);
        let file = mp4(&clip, false);
        assert!(contact_sheet(&file).is_some());
        assert!(contact_sheet(b"").is_none());
        assert!(contact_sheet(b"\0\0\0\x18ftypisom garbage after a header").is_none());
        assert!(contact_sheet(&[0x55; 4096]).is_none());
        // Cut anywhere: the `moov` that comes last is lost or incomplete.
        for length in (0..file.len()).step_by(23) {
            assert!(contact_sheet(&file[..length]).is_none(), "cut at {length}");
        }
        // With the `moov` first, a cut leaves samples past the end of the file.
        let faststart = mp4(&clip, true);
        assert!(contact_sheet(&faststart).is_some());
        assert!(contact_sheet(&faststart[..faststart.len() - 10]).is_none());
        // Flipped bytes anywhere: no panic, whatever the demuxer and decoder make of them.
        for start in 0..7 {
            let mut noisy = file.clone();
            for index in (start * 5..noisy.len()).step_by(61) {
                noisy[index] ^= 0xa5;
            }
            let _ = contact_sheet(&noisy);
        }
        // Not H.264: the same track with another sample format.
        let moov_at = file.len() - encoded(&moov_of(&clip, chunk_offsets_from(&clip, 0))).len();
        let mut other = file.clone();
        let format_at = moov_at + find(&other[moov_at..], b"avc1").expect("the sample entry");
        other[format_at..format_at + 4].copy_from_slice(b"mp4v");
        assert!(contact_sheet(&other).is_none());
        // Not a video at all.
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&[0; 12], 2, 2, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert!(contact_sheet(&png).is_none());
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|window| window == needle)
    }
}
