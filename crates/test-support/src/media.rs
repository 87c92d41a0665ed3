//! Media made in code for tests, so a test owns exactly what it feeds in: a WAV file of a sine.

/// A 16-bit PCM WAV file: `seconds` of a 440 Hz sine at `amplitude` (0 to 1 of full scale),
/// the same in both of two channels, at 8 kHz.
pub fn sine_wav(seconds: f64, amplitude: f64) -> Vec<u8> {
    const RATE: u32 = 8000;
    let frames = (seconds * f64::from(RATE)) as u32;
    let data_bytes = frames * 4;
    let mut wav = Vec::with_capacity(44 + data_bytes as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    // PCM, two channels, the rate, bytes per second, bytes per frame, bits per sample.
    for (value, width) in [(16, 4), (1, 2), (2, 2), (RATE, 4), (RATE * 4, 4), (4, 2), (16, 2)] {
        wav.extend_from_slice(&value.to_le_bytes()[..width]);
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_bytes.to_le_bytes());
    for frame in 0..frames {
        let phase = f64::from(frame) * 440.0 * std::f64::consts::TAU / f64::from(RATE);
        let sample = (phase.sin() * amplitude * f64::from(i16::MAX)) as i16;
        wav.extend_from_slice(&sample.to_le_bytes());
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}
