//! The file names clients give their uploads, made safe to store and to show to others (an
//! attachment's `filename`). Pure, so the fuzz targets (`fuzz/`) reach it.

/// Invisible formatting characters: bidirectional overrides and isolates (which make
/// `invoice\u{202e}fdp.exe` read as `invoiceexe.pdf`), zero-width characters, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// A client's file name made safe to store and to send back: its last path component, no
/// control or invisible formatting characters or quotes, at most 255 bytes; `file` when
/// nothing is left.
pub fn clean_filename(name: Option<&str>) -> String {
    let base = name.unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean = String::new();
    for c in base.chars().filter(|c| !c.is_control() && !is_invisible_format(*c) && *c != '"') {
        if clean.len() + c.len_utf8() > 255 {
            break;
        }
        clean.push(c);
    }
    match clean.trim() {
        "" | "." | ".." => "file".into(),
        trimmed => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_paths_quotes_and_control_characters() {
        assert_eq!(clean_filename(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_filename(Some("C:\\Users\\me\\photo \"1\".png")), "photo 1.png");
        assert_eq!(clean_filename(Some("a\r\nb.txt")), "ab.txt");
        assert_eq!(clean_filename(Some("invoice\u{202e}fdp.exe")), "invoicefdp.exe");
        assert_eq!(clean_filename(Some("..")), "file");
        assert_eq!(clean_filename(None), "file");
        let long = "é".repeat(200);
        assert!(clean_filename(Some(&long)).len() <= 255);
    }
}
