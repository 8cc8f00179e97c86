//! The `Blueprint` structure as `DescribeBlueprints` answers it: the public blueprints every
//! region offers, and the `SHARED` blueprint a CVM image becomes once shared.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

/// A blueprint as the answer carries it: every field of the API's `Blueprint` structure, so
/// that a client decoding it strictly is tested too.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Blueprint {
    pub(super) blueprint_id: String,
    display_title: String,
    display_version: String,
    description: String,
    os_name: String,
    platform: String,
    pub(super) platform_type: &'static str,
    pub(super) blueprint_type: &'static str,
    image_url: String,
    required_system_disk_size: u64,
    pub(super) blueprint_state: &'static str,
    created_time: String,
    pub(super) blueprint_name: String,
    support_automation_tools: bool,
    required_memory_size: u64,
    /// The CVM image a shared blueprint came from; null for the public ones.
    image_id: Option<String>,
    community_url: String,
    guide_url: String,
    scene_id_set: Vec<String>,
    docker_version: Option<String>,
    blueprint_shared: bool,
    /// Always empty: the simulator keeps no tags, but the field is part of the structure.
    tags: Vec<Value>,
}

impl Blueprint {
    pub fn id(&self) -> &str {
        &self.blueprint_id
    }

    /// The blueprint a CVM image becomes once shared to Lighthouse.
    pub fn shared(image_id: &str, blueprint_id: String, shared_at: SystemTime) -> Self {
        Self {
            blueprint_id,
            display_title: image_id.to_string(),
            display_version: String::new(),
            description: format!("Shared from the CVM custom image {image_id}."),
            os_name: "TencentOS Server 3.1 (TK4)".to_string(),
            platform: "TencentOS".to_string(),
            platform_type: "LINUX_UNIX",
            blueprint_type: "SHARED",
            image_url: String::new(),
            required_system_disk_size: 20,
            blueprint_state: "NORMAL",
            created_time: humantime::format_rfc3339_seconds(shared_at).to_string(),
            blueprint_name: image_id.to_string(),
            support_automation_tools: false,
            required_memory_size: 0,
            image_id: Some(image_id.to_string()),
            community_url: String::new(),
            guide_url: String::new(),
            scene_id_set: Vec::new(),
            docker_version: None,
            blueprint_shared: false,
            tags: Vec::new(),
        }
    }

    /// The public blueprints every region offers: enough of them, of both public types and
    /// both platforms, that a client which forgets its `blueprint-type` filter sees them.
    pub fn public() -> Vec<Self> {
        PUBLIC.iter().map(Self::offered).collect()
    }

    fn offered(public: &Public) -> Self {
        let &(id, title, version, kind, os_name, platform, platform_type) = public;
        Self {
            blueprint_id: id.to_string(),
            display_title: title.to_string(),
            display_version: version.to_string(),
            description: format!("{title} {version}, offered by Lighthouse."),
            os_name: os_name.to_string(),
            platform: platform.to_string(),
            platform_type,
            blueprint_type: kind,
            image_url: format!("https://lighthouse.example/{id}.png"),
            required_system_disk_size: 20,
            blueprint_state: "NORMAL",
            created_time: "2024-01-01T00:00:00Z".to_string(),
            blueprint_name: title.to_string(),
            support_automation_tools: true,
            required_memory_size: if platform_type == "WINDOWS" { 2 } else { 1 },
            image_id: None,
            community_url: String::new(),
            guide_url: String::new(),
            scene_id_set: Vec::new(),
            docker_version: (title == "Docker CE").then(|| version.to_string()),
            blueprint_shared: false,
            tags: Vec::new(),
        }
    }
}

/// A public blueprint: id, title, version, type, OS name, platform, platform type.
type Public = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const PUBLIC: [Public; 4] = [
    (
        "lhbp-1l4ptuvm",
        "WordPress",
        "6.4",
        "APP_OS",
        "CentOS 7.9 64bit",
        "CentOS",
        "LINUX_UNIX",
    ),
    (
        "lhbp-2ecmd9ar",
        "Ubuntu Server",
        "22.04 LTS 64bit",
        "PURE_OS",
        "Ubuntu Server 22.04 LTS 64bit",
        "Ubuntu",
        "LINUX_UNIX",
    ),
    (
        "lhbp-6m4hjvqd",
        "Docker CE",
        "24.0",
        "APP_OS",
        "TencentOS Server 3.1 (TK4)",
        "TencentOS",
        "LINUX_UNIX",
    ),
    (
        "lhbp-k3x0wdc5",
        "Windows Server",
        "2022 DataCenter 64bit",
        "PURE_OS",
        "Windows Server 2022 DataCenter 64bit",
        "Windows Server",
        "WINDOWS",
    ),
];
