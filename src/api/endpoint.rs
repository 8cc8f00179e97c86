//! Where requests go: the endpoint template, with `{region}` replaced per row.

/// The endpoint template, `{region}` replaced per row.
#[derive(Clone, Debug)]
pub struct Endpoint {
    template: String,
}

impl Endpoint {
    pub fn new(template: &str) -> Self {
        Self {
            template: template.trim_end_matches('/').to_string(),
        }
    }

    pub fn has_region(&self) -> bool {
        self.template.contains("{region}")
    }

    pub fn url(&self, region: &str) -> String {
        self.template.replace("{region}", region)
    }

    pub fn template(&self) -> &str {
        &self.template
    }
}

/// Whether a URL's host is this machine.
pub fn is_loopback(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}
