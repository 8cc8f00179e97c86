//! The account as the simulator keeps it: which images exist in which region (and whether
//! they can be shared), which are shared now and since when, and the stable BlueprintId a
//! shared image gets. The writes, the listings and the admin requests all read and change it
//! here, so that they always agree.

use std::collections::BTreeMap;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::refusal::Refusal;

/// An image as the sharing state knows it: `(region, image_id)`.
pub type ImageKey = (&'static str, String);

/// The only state in which an image can be shared.
pub const NORMAL: &str = "NORMAL";
/// The states `DescribeImagesToShare` documents for an image.
pub const IMAGE_STATES: &[&str] = &[
    "CREATING",
    "NORMAL",
    "CREATEFAILED",
    "USING",
    "SYNCING",
    "IMPORTING",
    "IMPORTFAILED",
];

/// An image that exists before the simulator starts (`--images` or the in-process config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededImage {
    pub region: String,
    pub image_id: String,
    /// One of [`IMAGE_STATES`]; `NORMAL` unless the seed says otherwise.
    pub state: String,
    /// Why it cannot be shared (free text, shown as the service gives it); `None`: shareable.
    pub unshareable_reason: Option<String>,
}

impl SeededImage {
    /// A shareable `NORMAL` image.
    pub fn new(region: &str, image_id: &str) -> Self {
        Self {
            region: region.to_string(),
            image_id: image_id.to_string(),
            state: NORMAL.to_string(),
            unshareable_reason: None,
        }
    }
}

/// What the account knows of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRecord {
    pub state: String,
    pub unshareable_reason: Option<String>,
}

impl ImageRecord {
    fn normal() -> Self {
        Self {
            state: NORMAL.to_string(),
            unshareable_reason: None,
        }
    }

    /// Only a `NORMAL` image without a reason against it can be shared.
    pub fn is_shareable(&self) -> bool {
        self.unshareable_reason.is_none() && self.state == NORMAL
    }

    /// Why it cannot be shared, as `DescribeImagesToShare` says it; empty when it can.
    pub fn reason(&self) -> String {
        match (&self.unshareable_reason, self.state == NORMAL) {
            (Some(reason), _) => reason.clone(),
            (None, true) => String::new(),
            (None, false) => format!(
                "The image is in state {}; only NORMAL images can be shared.",
                self.state
            ),
        }
    }
}

/// The account: its images and its shares.
pub struct State {
    /// `None`: every image id exists in every region, shareable and `NORMAL`.
    catalog: Option<BTreeMap<ImageKey, ImageRecord>>,
    /// The images shared now, and when: `DescribeBlueprints` answers them.
    shared: BTreeMap<ImageKey, SystemTime>,
}

impl State {
    /// Refuses a seed that names an unsupported region, a malformed image id or an unknown
    /// image state. An image seeded as shared exists, even if `images` omits it.
    pub fn new(
        shared: &[(String, String)],
        images: Option<&[SeededImage]>,
    ) -> Result<Self, String> {
        let started = SystemTime::now();
        let shared = shared
            .iter()
            .map(|(region, image_id)| key(region, image_id).map(|key| (key, started)))
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let catalog = match images {
            None => None,
            Some(images) => Some(catalog(images, &shared)?),
        };
        Ok(Self { catalog, shared })
    }

    /// The image, if it exists in `region`.
    pub fn image(&self, region: &'static str, image_id: &str) -> Option<ImageRecord> {
        match &self.catalog {
            None => Some(ImageRecord::normal()),
            Some(catalog) => catalog.get(&(region, image_id.to_string())).cloned(),
        }
    }

    /// SHARE: the new BlueprintId, or the service's refusal.
    pub fn share(&mut self, region: &'static str, image_id: &str) -> Result<String, Refusal> {
        let image = self.existing(region, image_id)?;
        let key = (region, image_id.to_string());
        if self.shared.contains_key(&key) {
            return Err(Refusal::new(
                "UnsupportedOperation.ImageAlreadyShared",
                format!("The image `{image_id}` has already been shared."),
            ));
        }
        if !image.is_shareable() {
            return Err(Refusal::new(
                "UnsupportedOperation.ImageUnableToShare",
                format!(
                    "The image `{image_id}` cannot be shared: {}",
                    image.reason()
                ),
            ));
        }
        self.shared.insert(key, SystemTime::now());
        Ok(blueprint_id(region, image_id))
    }

    /// CANCEL: unshares (an image that is not shared stays so).
    pub fn cancel(&mut self, region: &'static str, image_id: &str) -> Result<(), Refusal> {
        self.existing(region, image_id)?;
        self.shared.remove(&(region, image_id.to_string()));
        Ok(())
    }

    fn existing(&self, region: &'static str, image_id: &str) -> Result<ImageRecord, Refusal> {
        self.image(region, image_id).ok_or_else(|| {
            Refusal::new(
                "ResourceNotFound.ImageIdNotFound",
                format!("The image `{image_id}` does not exist."),
            )
        })
    }

    /// The images shared in `region`, with when.
    pub fn shared_in<'a>(
        &'a self,
        region: &'a str,
    ) -> impl Iterator<Item = (&'a str, SystemTime)> + 'a {
        self.shared
            .iter()
            .filter(move |((r, _), _)| *r == region)
            .map(|((_, image_id), at)| (image_id.as_str(), *at))
    }

    /// Every shared image: region → image id → BlueprintId.
    pub fn all_shared(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut all: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (region, image_id) in self.shared.keys() {
            all.entry(region.to_string())
                .or_default()
                .insert(image_id.clone(), blueprint_id(region, image_id));
        }
        all
    }

    /// The images a listing of `region` can see, ordered by id. Without a catalog the images
    /// are countless, so a listing sees those it names (`named`) and those shared there.
    pub fn images_in(&self, region: &'static str, named: &[String]) -> Vec<(String, ImageRecord)> {
        match &self.catalog {
            Some(catalog) => catalog
                .iter()
                .filter(|((r, _), _)| *r == region)
                .map(|((_, id), image)| (id.clone(), image.clone()))
                .collect(),
            None => {
                let mut ids: Vec<String> = named
                    .iter()
                    .filter(|id| crate::action::is_image_id(id))
                    .cloned()
                    .chain(self.shared_in(region).map(|(id, _)| id.to_string()))
                    .collect();
                ids.sort();
                ids.dedup();
                ids.into_iter()
                    .map(|id| (id, ImageRecord::normal()))
                    .collect()
            }
        }
    }
}

/// The catalog a seed describes; images shared from the start are added if missing.
fn catalog(
    images: &[SeededImage],
    shared: &BTreeMap<ImageKey, SystemTime>,
) -> Result<BTreeMap<ImageKey, ImageRecord>, String> {
    let mut catalog = BTreeMap::new();
    for image in images {
        if !IMAGE_STATES.contains(&image.state.as_str()) {
            return Err(format!(
                "`{}` is not an image state: one of {}",
                image.state,
                IMAGE_STATES.join(", ")
            ));
        }
        let record = ImageRecord {
            state: image.state.clone(),
            unshareable_reason: image.unshareable_reason.clone(),
        };
        catalog.insert(key(&image.region, &image.image_id)?, record);
    }
    for key in shared.keys() {
        catalog
            .entry(key.clone())
            .or_insert_with(ImageRecord::normal);
    }
    Ok(catalog)
}

/// One image in canonical form, or why it cannot be one.
pub fn key(region: &str, image_id: &str) -> Result<ImageKey, String> {
    let canonical = crate::action::supported_region(region)
        .ok_or_else(|| format!("`{region}` is not a region the action supports"))?;
    if !crate::action::is_image_id(image_id) {
        return Err(format!(
            "`{image_id}` is not an image id (img- and 8 of a-z0-9)"
        ));
    }
    Ok((canonical, image_id.to_string()))
}

/// `lhbp-` + 8 characters, stable for the same (region, image).
pub fn blueprint_id(region: &str, image_id: &str) -> String {
    let digest = Sha256::digest(format!("{region}/{image_id}").as_bytes());
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let suffix: String = digest[..8]
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect();
    format!("lhbp-{suffix}")
}
