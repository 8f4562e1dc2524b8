//! Destination domains' MTA-STS policies as last fetched, so that one
//! holds across restarts until its max_age runs out.

use super::tables::MTA_STS_POLICIES;
use super::view::{View, WriteView};
use super::{Result, decode, encode};
use crate::domain::mta_sts::KeptPolicy;

impl View {
    pub fn mta_sts_policy(&self, domain: &str) -> Result<Option<KeptPolicy>> {
        self.open(MTA_STS_POLICIES)?
            .get(domain)?
            .map(|v| decode("mta_sts_policies", domain, v.value()))
            .transpose()
    }
}

impl WriteView {
    pub fn put_mta_sts_policy(&self, domain: &str, kept: &KeptPolicy) -> Result<()> {
        self.txn
            .open_table(MTA_STS_POLICIES)?
            .insert(domain, encode(kept).as_slice())?;
        Ok(())
    }
}
