//! `dermrobust audit adversarial`: parse the attack options and run the adversarial audit.

use anyhow::Result;

use super::AuditModelArgs;
use crate::audits::adversarial::AttackOptions;

#[derive(clap::Args, Clone)]
pub struct AdversarialArgs {
    #[command(flatten)]
    pub common: AuditModelArgs,
    #[command(flatten)]
    pub attack: AttackOptions,
}

pub fn run(a: &AdversarialArgs, quiet: bool) -> Result<()> {
    let subject = a.common.subject()?;
    let audit = a.attack.audit_for(&subject, &a.common.out)?;
    let outcome = subject.run(&audit, &a.common.out, a.common.resume, quiet)?;
    for m in &outcome.results {
        println!("{}: {} of {} images attacked", m.model, m.targets, m.images);
        for r in &m.attacks {
            println!(
                "  {:<28} {:>4}/{:<4} {:>6}  median queries {}",
                r.attack,
                r.successes,
                r.attempted,
                r.success_rate.map_or("–".into(), |c| format!("{:.1}%", 100.0 * c.estimate)),
                r.median_queries.map_or("–".into(), |q| format!("{q:.0}"))
            );
        }
        if let Some(base) = m.sweeps.first() {
            let worst = m.sweeps.iter().max_by_key(|s| s.false_negatives).unwrap_or(base);
            println!("  sweeps: {} false negatives unperturbed; most under '{}': {}", base.false_negatives, worst.setting, worst.false_negatives);
        }
    }
    println!("wrote {}/adversarial.json, adversarial_per_image.csv and report.html", a.common.out.display());
    Ok(())
}
