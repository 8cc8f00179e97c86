//! `--shared FILE`: images shared before the simulator starts, so that a rehearsal can meet an
//! account where some images are shared already (SPEC §9: the look-up, `already_shared`).

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
            .and_then(|(region, image_id)| image(region.trim(), image_id.trim()))
            .map_err(|why| format!("line {n} (`{line}`): {why}"))?;
        images.push((region.to_string(), image_id));
    }
    Ok(images)
}

/// One shared image in canonical form, or why it cannot be one.
pub fn image(region: &str, image_id: &str) -> Result<(&'static str, String), String> {
    let canonical = crate::action::supported_region(region)
        .ok_or_else(|| format!("`{region}` is not a region the action supports"))?;
    if !crate::action::is_image_id(image_id) {
        return Err(format!(
            "`{image_id}` is not an image id (img- and 8 of a-z0-9)"
        ));
    }
    Ok((canonical, image_id.to_string()))
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
}
