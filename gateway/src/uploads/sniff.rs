//! What an uploaded file is: its content type sniffed from the first bytes (never taken from
//! the client) and an image's size read from its header. (A client's file name is made safe
//! by `shared::protocol::clean_filename`.)

/// Bytes kept from the start of a file to sniff its type and read an image's size (a JPEG's
/// size may come after tens of KiB of EXIF data).
pub const HEAD_BYTES: usize = 256 * 1024;

/// Image types browsers show safely inline; every other file is served as a download.
const INLINE_IMAGES: [&str; 6] =
    ["image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif"];

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    pub content_type: String,
    /// Width and height, for the image types shown inline.
    pub size: Option<(i32, i32)>,
}

impl Sniffed {
    /// Whether browsers may show it inline (a raster image of a known type).
    pub fn inline(content_type: &str) -> bool {
        INLINE_IMAGES.contains(&content_type)
    }

    /// The `Content-Type` a file of `content_type` is served with: its own, except for types a
    /// browser would run or render as a page of ours (HTML, XML, scripts), served as opaque
    /// bytes.
    pub fn served_as(content_type: &str) -> &str {
        match content_type.starts_with("text/")
            || content_type.contains("xml")
            || content_type.contains("script")
        {
            true => "application/octet-stream",
            false => content_type,
        }
    }
}

/// Sniffs `head`, the first [`HEAD_BYTES`] (or fewer) of a file.
pub fn sniff(head: &[u8]) -> Sniffed {
    let content_type = infer::get(head).map_or("application/octet-stream", |kind| kind.mime_type());
    let size = match Sniffed::inline(content_type) {
        true => imagesize::blob_size(head)
            .ok()
            .and_then(|s| Some((i32::try_from(s.width).ok()?, i32::try_from(s.height).ok()?))),
        false => None,
    };
    // An image whose size cannot be read is served as a file.
    let content_type = match (Sniffed::inline(content_type), size) {
        (true, None) => "application/octet-stream",
        _ => content_type,
    };
    Sniffed { content_type: content_type.to_owned(), size }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1×1 PNG with the width and height fields rewritten.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut png =
            vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
        png.extend_from_slice(&width.to_be_bytes());
        png.extend_from_slice(&height.to_be_bytes());
        png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        png
    }

    #[test]
    fn sniffing_reads_the_content_not_the_name() {
        assert_eq!(
            sniff(&png(640, 480)),
            Sniffed { content_type: "image/png".into(), size: Some((640, 480)) }
        );
        assert_eq!(sniff(b"%PDF-1.7\n...").content_type, "application/pdf");
        let html = sniff(b"<html><script>alert(1)</script></html>");
        assert_eq!(html, Sniffed { content_type: "text/html".into(), size: None });
        assert_eq!(Sniffed::served_as(&html.content_type), "application/octet-stream");
        assert_eq!(Sniffed::served_as("application/pdf"), "application/pdf");
        assert_eq!(sniff(b"just some words").content_type, "application/octet-stream");
        // A PNG signature with a truncated header is not shown as an image.
        assert_eq!(sniff(&png(1, 1)[..12]).content_type, "application/octet-stream");
    }
}
