//! The tokenizer against ComfyUI's own vocabulary: ids equal to what transformers'
//! `CLIPTokenizer.from_pretrained(comfy/sd1_tokenizer)` gives (taken from it, ComfyUI 0.3.75's
//! tree, without ftfy as ComfyUI runs it), and prompts packed into windows as ComfyUI packs them.
//! Needs `COMFYUI_MCP_CLIP_VOCABULARY` (the `comfy/sd1_tokenizer` folder; `scripts/test` sets it
//! from the rig's tree): without it these tests fail, they never skip.

use comfy_text::{ClipTokenizer, analyze};

fn tokenizer() -> ClipTokenizer {
    let folder = std::env::var("COMFYUI_MCP_CLIP_VOCABULARY")
        .expect("set COMFYUI_MCP_CLIP_VOCABULARY to a ComfyUI tree's comfy/sd1_tokenizer folder");
    let merges = std::fs::read_to_string(std::path::Path::new(&folder).join("merges.txt"))
        .expect("merges.txt in COMFYUI_MCP_CLIP_VOCABULARY");
    ClipTokenizer::from_merges(&merges).expect("ComfyUI's merges load")
}

#[test]
fn ids_are_transformers_ids() {
    let tokenizer = tokenizer();
    let expected: &[(&str, &[u16])] = &[
        ("a photo of a cat", &[320, 1125, 539, 320, 2368]),
        ("Hi there", &[1883, 997]),
        (
            "masterpiece, best quality, (red fox:1.2), snow!!",
            &[
                12066, 267, 949, 3027, 267, 263, 736, 3240, 281, 272, 269, 273, 2361, 2583, 748,
            ],
        ),
        (
            "it's 1999 and we're  here",
            &[585, 568, 272, 280, 280, 280, 537, 649, 982, 763],
        ),
        (
            "café ßtraße naïve",
            &[15304, 127, 253, 752, 127, 253, 324, 1097, 35689, 563],
        ),
        ("a 🦊 in the snow", &[320, 6040, 488, 530, 518, 2583]),
        (
            "supercalifragilisticexpialidocious",
            &[1642, 2857, 13093, 2076, 5868, 26850, 835, 639, 38466],
        ),
        (
            "embedding:easynegative, ugly",
            &[19703, 796, 281, 18308, 8869, 267, 8159],
        ),
    ];
    for (text, ids) in expected {
        assert_eq!(tokenizer.encode(text), *ids, "{text}");
    }
    assert_eq!(tokenizer.decode(&[320, 1125, 539, 320, 2368]), "a photo of a cat");
}

#[test]
fn windows_hold_75_tokens_and_cut_long_parts() {
    let tokenizer = tokenizer();
    // 12 tokens a phrase (11 words and a comma): one part of 6 x 12 = 72 tokens, then a weighted
    // part of 4 tokens that does not fit and moves whole, then a long word.
    let phrase = "a very detailed photograph of a red fox standing in deep snow";
    let prompt = format!("{}, (golden hour light:1.3)", [phrase; 7].join(", "));
    let analysis = analyze(Some(&tokenizer), &prompt).unwrap();
    let total = analysis.tokens.unwrap();
    assert_eq!(
        total,
        tokenizer.encode(&format!("{}, ", [phrase; 7].join(", "))).len() + 3
    );
    assert_eq!(analysis.windows.len(), 2, "{analysis:#?}");
    assert_eq!(
        analysis.windows[0].tokens, 75,
        "the long part is cut at the window's end"
    );
    assert_eq!(
        analysis.windows.iter().map(|window| window.tokens).sum::<usize>(),
        total
    );
    assert!(
        analysis.windows[1].text.ends_with("golden hour light"),
        "{analysis:#?}"
    );
    assert!(
        analysis
            .warnings
            .iter()
            .any(|warning| warning.contains("window 1 ends inside")),
        "{:?}",
        analysis.warnings
    );
    // A short part that does not fit moves whole.
    let filler = ["snow"; 73].join(" ");
    let moved = analyze(Some(&tokenizer), &format!("{filler} (red fox tail:1.2)")).unwrap();
    assert_eq!(
        moved
            .windows
            .iter()
            .map(|window| window.tokens)
            .collect::<Vec<_>>(),
        [73, 3]
    );
    assert!(
        moved
            .warnings
            .iter()
            .any(|warning| warning.contains("moved whole to window 2")),
        "{:?}",
        moved.warnings
    );
}

#[test]
fn a_file_that_is_no_merges_file_is_refused() {
    assert!(ClipTokenizer::from_merges("{\"a\": 1}").is_err());
}
