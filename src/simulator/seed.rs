//! The seed files: `--shared FILE`, images shared before the simulator starts, so that a
//! rehearsal can meet an account where some images are shared already (SPEC §9: the look-up,
//! `already_shared`); and `--images FILE`, the images that exist per region, some of them not
//! shareable (what `DescribeImagesToShare` answers and the writes agree with).

use super::state::{self, NORMAL, SeededImage};

/// Reads `region,image_id` lines. A header line `region,image_id` may come first; blank lines
/// are skipped; a bad line is an error naming it.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut images = Vec::new();
    let mut first = true;
    for (n, line) in text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
    {
        if line.is_empty() {
            continue;
        }
        let header = first && line.eq_ignore_ascii_case("region,image_id");
        first = false;
        if header {
            continue;
        }
        let (region, image_id) = line
            .split_once(',')
            .ok_or_else(|| "expected `region,image_id`".to_string())
            .and_then(|(region, image_id)| state::key(region.trim(), image_id.trim()))
            .map_err(|why| format!("line {n} (`{}`): {why}", crate::text::for_line(line)))?;
        images.push((region.to_string(), image_id));
    }
    Ok(images)
}

/// Reads `region,image_id[,state[,unshareable reason]]` lines. A header line starting
/// `region,image_id` may come first; blank lines are skipped; a bad line is an error naming it.
/// The state defaults to NORMAL; a reason (the rest of the line, commas included) makes the
/// image not shareable.
pub fn parse_images(text: &str) -> Result<Vec<SeededImage>, String> {
    let mut images = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
    {
        let header = n == 1 && line.to_ascii_lowercase().starts_with("region,image_id");
        if line.is_empty() || header {
            continue;
        }
        let image = image_line(line)
            .map_err(|why| format!("line {n} (`{}`): {why}", crate::text::for_line(line)))?;
        images.push(image);
    }
    Ok(images)
}

fn image_line(line: &str) -> Result<SeededImage, String> {
    let mut fields = line.splitn(4, ',');
    let region = fields.next().unwrap_or_default().trim();
    let image_id = fields
        .next()
        .ok_or_else(|| "expected `region,image_id[,state[,unshareable reason]]`".to_string())?
        .trim();
    let (region, image_id) = state::key(region, image_id)?;
    let image_state = match fields.next().map(str::trim) {
        None | Some("") => NORMAL.to_string(),
        Some(given) => {
            let upper = given.to_ascii_uppercase();
            if !state::IMAGE_STATES.contains(&upper.as_str()) {
                return Err(format!(
                    "`{given}` is not an image state: one of {}",
                    state::IMAGE_STATES.join(", ")
                ));
            }
            upper
        }
    };
    let reason = fields
        .next()
        .map(str::trim)
        .filter(|reason| !reason.is_empty());
    Ok(SeededImage {
        region: region.to_string(),
        image_id,
        state: image_state,
        unshareable_reason: reason.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_with_an_optional_header_and_blank_lines() {
        let text = "region,image_id\n\nAP-Guangzhou, img-aaaaaaaa\nap-tokyo,img-bbbbbbbb\n";
        assert_eq!(
            parse(text),
            Ok(vec![
                ("ap-guangzhou".to_string(), "img-aaaaaaaa".to_string()),
                ("ap-tokyo".to_string(), "img-bbbbbbbb".to_string()),
            ])
        );
        assert_eq!(parse(""), Ok(Vec::new()));
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, line) in [
            ("ap-tokyo,img-aaaaaaaa\nap-mars,img-aaaaaaaa\n", "line 2 "),
            ("\nap-tokyo img-aaaaaaaa\n", "line 2 "),
            ("ap-tokyo,img-BAD\n", "line 1 "),
            ("ap-tokyo,img-aaaaaaaa\nregion,image_id\n", "line 2 "),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.starts_with(line), "{text:?}: {error}");
        }
    }

    #[test]
    fn image_lines_take_a_state_and_a_reason_with_commas() {
        let text = "region,image_id,state,reason\nap-tokyo,img-aaaaaaaa\nap-tokyo,img-bbbbbbbb,syncing\nap-tokyo,img-cccccccc,NORMAL,imported, not from CVM\n";
        let images = parse_images(text).expect("a valid seed");
        assert_eq!(images[0], SeededImage::new("ap-tokyo", "img-aaaaaaaa"));
        assert_eq!(images[1].state, "SYNCING");
        assert_eq!(images[1].unshareable_reason, None);
        assert_eq!(
            images[2].unshareable_reason.as_deref(),
            Some("imported, not from CVM")
        );
        for (text, line) in [
            ("ap-tokyo,img-aaaaaaaa,ASLEEP\n", "line 1 "),
            ("\nap-tokyo\n", "line 2 "),
            ("ap-mars,img-aaaaaaaa\n", "line 1 "),
        ] {
            let error = parse_images(text).expect_err(text);
            assert!(error.starts_with(line), "{text:?}: {error}");
        }
    }
}
