//! The median and quartiles of per-round ratios, as the benches print them.

/// `"1.151 median (quartiles 1.133–1.169)"` for `ratios`, in any order.
pub fn quartiles(mut ratios: Vec<f64>) -> String {
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q) as usize];
    format!(
        "{:.3} median (quartiles {:.3}–{:.3})",
        at(0.5),
        at(0.25),
        at(0.75)
    )
}
