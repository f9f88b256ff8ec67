//! Strong- and weak-scaling analysis of run records: reduces repeated runs
//! of one configuration to medians and compares the configurations of one
//! problem: speedup, parallel efficiency, the Karp-Flatt serial fraction,
//! and how much of the wall time was compute versus communication. Runs on
//! one node and on several sit in the same table, measured against the same
//! base, so the cost of leaving the node shows directly.

use std::collections::{BTreeMap, BTreeSet};

use super::median;
use super::record::RunRecord;
use super::render::{Table, human_seconds};

/// Runs whose work per core differs by less than this fraction count as one
/// weak-scaling series (item counts rarely divide exactly).
const WEAK_TOLERANCE: f64 = 0.01;

/// What is computed: the same workload, input size and schedule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    /// Workload name.
    pub workload: String,
    /// Items mapped.
    pub items: u64,
    /// Schedule name.
    pub schedule: String,
}

/// Median phase times of a configuration, seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    /// Cutting and serializing the input.
    pub serialize: f64,
    /// Handing chunks out.
    pub scatter: f64,
    /// Compute on the slowest rank.
    pub compute_max: f64,
    /// Root idle, waiting for ranks.
    pub wait: f64,
    /// Receiving results.
    pub gather: f64,
    /// Deserializing and checksumming results.
    pub assemble: f64,
}

impl PhaseTimes {
    /// Names and values, in the order the time is spent.
    pub fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("serialize", self.serialize),
            ("scatter", self.scatter),
            ("compute (max)", self.compute_max),
            ("wait", self.wait),
            ("gather", self.gather),
            ("assemble", self.assemble),
        ]
    }

    /// Time spent moving data rather than computing: serialize, scatter,
    /// gather and assemble.
    pub fn communication(&self) -> f64 {
        self.serialize + self.scatter + self.gather + self.assemble
    }
}

/// One configuration of a problem, its repeated runs reduced to medians.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// What was computed.
    pub problem: Problem,
    /// MPI ranks.
    pub ranks: u64,
    /// Threads per rank.
    pub threads: u64,
    /// Distinct nodes.
    pub nodes: u64,
    /// Runs reduced into this configuration.
    pub runs: usize,
    /// Median wall time, seconds.
    pub wall_s: f64,
    /// Median of each phase, taken separately.
    pub phases: PhaseTimes,
}

impl Config {
    /// Cores used: ranks x threads.
    pub fn cores(&self) -> u64 {
        self.ranks * self.threads
    }

    /// Ranks per node (the most on any node when they do not divide evenly).
    pub fn ranks_per_node(&self) -> u64 {
        self.ranks.div_ceil(self.nodes)
    }

    /// Work per core, the quantity weak scaling keeps constant.
    pub fn items_per_core(&self) -> f64 {
        self.problem.items as f64 / self.cores() as f64
    }

    /// Share of the wall time the slowest rank spent computing.
    pub fn compute_share(&self) -> f64 {
        self.phases.compute_max / self.wall_s
    }

    /// Share of the wall time spent serializing and moving data.
    pub fn communication_share(&self) -> f64 {
        self.phases.communication() / self.wall_s
    }

    /// Order within a table, and the base of a comparison: fewest cores, then
    /// fewest nodes, then fewest ranks (so 1 rank x 2 threads comes first).
    fn rank_key(&self) -> (u64, u64, u64) {
        (self.cores(), self.nodes, self.ranks)
    }
}

/// Reduces the runs of each configuration (problem, ranks, threads, nodes)
/// to one [`Config`] of medians, ordered by problem and then cores.
pub fn reduce(records: &[RunRecord]) -> Vec<Config> {
    let mut groups: BTreeMap<(Problem, u64, u64, u64), Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        let problem = Problem {
            workload: r.workload.clone(),
            items: r.items,
            schedule: r.schedule.clone(),
        };
        groups
            .entry((problem, r.ranks, r.threads, r.node_count()))
            .or_default()
            .push(r);
    }
    let mut configs: Vec<Config> = groups
        .into_iter()
        .map(|((problem, ranks, threads, nodes), runs)| {
            let med = |f: fn(&RunRecord) -> f64| {
                median(&mut runs.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            Config {
                problem,
                ranks,
                threads,
                nodes,
                runs: runs.len(),
                wall_s: med(|r| r.wall_s),
                phases: PhaseTimes {
                    serialize: med(|r| r.phases.serialize),
                    scatter: med(|r| r.phases.scatter),
                    compute_max: med(|r| r.phases.compute.max),
                    wait: med(|r| r.phases.wait),
                    gather: med(|r| r.phases.gather),
                    assemble: med(|r| r.phases.assemble),
                },
            }
        })
        .collect();
    configs.sort_by(|a, b| (&a.problem, a.rank_key()).cmp(&(&b.problem, b.rank_key())));
    configs
}

/// Speedup `S = T(base) / T(p)`.
pub fn speedup(t_base: f64, t: f64) -> f64 {
    t_base / t
}

/// Parallel efficiency `E = S / p'`, with `p'` the cores relative to the base.
pub fn efficiency(speedup: f64, p_rel: f64) -> f64 {
    speedup / p_rel
}

/// The Karp-Flatt experimentally determined serial fraction
/// `e = (1/S - 1/p') / (1 - 1/p')`; undefined (None) at `p' <= 1`.
///
/// Unlike efficiency, it separates the causes of a poor speedup: an `e` that
/// grows with `p'` means overhead grows with the ranks (communication), a
/// constant `e` means a serial part of the work.
pub fn karp_flatt(speedup: f64, p_rel: f64) -> Option<f64> {
    (p_rel > 1.0).then(|| (1.0 / speedup - 1.0 / p_rel) / (1.0 - 1.0 / p_rel))
}

/// Whether a series holds the same problem at growing core counts, or the
/// same work per core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Same problem, more cores: speedup, efficiency, Karp-Flatt.
    Strong,
    /// Same items per core: efficiency `T(base) / T(p)`.
    Weak,
}

/// One configuration within a series, compared with the series' base.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The configuration.
    pub config: Config,
    /// `T(base) / T(p)`; strong scaling only.
    pub speedup: Option<f64>,
    /// Parallel efficiency (strong: `S / p'`; weak: `T(base) / T(p)`).
    pub efficiency: f64,
    /// Karp-Flatt serial fraction; strong scaling past the base's cores only.
    pub karp_flatt: Option<f64>,
}

/// Configurations compared against one base: one table, one line per
/// placement in the charts.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Strong or weak scaling.
    pub kind: Kind,
    /// Workload (and for strong scaling, items) and schedule.
    pub problem: Problem,
    /// Rows ordered by cores; the first is the base.
    pub rows: Vec<Row>,
}

impl Series {
    /// Compares `configs` (of one problem) with the one that has the fewest cores.
    fn strong(mut configs: Vec<Config>) -> Series {
        configs.sort_by_key(Config::rank_key);
        let base = configs[0].clone();
        let rows = configs
            .into_iter()
            .map(|c| {
                let p_rel = c.cores() as f64 / base.cores() as f64;
                let s = speedup(base.wall_s, c.wall_s);
                Row {
                    speedup: Some(s),
                    efficiency: efficiency(s, p_rel),
                    karp_flatt: karp_flatt(s, p_rel),
                    config: c,
                }
            })
            .collect();
        Series {
            kind: Kind::Strong,
            problem: base.problem,
            rows,
        }
    }

    /// Compares `configs` (same work per core) with the one that has the fewest cores.
    fn weak(mut configs: Vec<Config>) -> Series {
        configs.sort_by_key(Config::rank_key);
        let base = configs[0].clone();
        let rows = configs
            .into_iter()
            .map(|c| Row {
                speedup: None,
                efficiency: base.wall_s / c.wall_s,
                karp_flatt: None,
                config: c,
            })
            .collect();
        Series {
            kind: Kind::Weak,
            problem: base.problem,
            rows,
        }
    }

    /// The base configuration.
    pub fn base(&self) -> &Config {
        &self.rows[0].config
    }

    /// A heading such as `Strong scaling: primes, 20000000 items, static schedule`.
    pub fn title(&self) -> String {
        let p = &self.problem;
        match self.kind {
            Kind::Strong => format!(
                "Strong scaling: {}, {} items, {} schedule",
                p.workload, p.items, p.schedule
            ),
            Kind::Weak => format!(
                "Weak scaling: {}, {:.0} items per core, {} schedule",
                p.workload,
                self.base().items_per_core(),
                p.schedule
            ),
        }
    }

    /// The series as a table.
    pub fn table(&self) -> Table {
        let base = self.base();
        let note = format!(
            "base: {} rank{} x {} thread{} on {} node{}",
            base.ranks,
            plural(base.ranks),
            base.threads,
            plural(base.threads),
            base.nodes,
            plural(base.nodes)
        );
        let mut headers = vec!["ranks", "threads", "nodes", "ranks/node", "cores"];
        if self.kind == Kind::Weak {
            headers.push("items");
        }
        headers.extend(["runs", "wall (median)"]);
        match self.kind {
            Kind::Strong => headers.extend(["speedup", "efficiency", "Karp-Flatt e"]),
            Kind::Weak => headers.push("efficiency"),
        }
        headers.extend(["compute", "comm"]);
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let c = &row.config;
                let mut cells = vec![
                    c.ranks.to_string(),
                    c.threads.to_string(),
                    c.nodes.to_string(),
                    c.ranks_per_node().to_string(),
                    c.cores().to_string(),
                ];
                if self.kind == Kind::Weak {
                    cells.push(c.problem.items.to_string());
                }
                cells.push(c.runs.to_string());
                cells.push(human_seconds(c.wall_s));
                if let Some(s) = row.speedup {
                    cells.push(format!("{s:.3}"));
                }
                cells.push(format!("{:.3}", row.efficiency));
                if self.kind == Kind::Strong {
                    cells.push(
                        row.karp_flatt
                            .map_or("-".to_string(), |e| format!("{e:.3}")),
                    );
                }
                cells.push(percent(c.compute_share()));
                cells.push(percent(c.communication_share()));
                cells
            })
            .collect();
        Table {
            title: format!("{} ({note})", self.title()),
            headers,
            rows,
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", 100.0 * share)
}

/// Every comparison the records allow.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// All configurations, by problem and cores.
    pub configs: Vec<Config>,
    /// One strong-scaling series per problem (workload, items, schedule).
    pub strong: Vec<Series>,
    /// One weak-scaling series per run of equal work per core.
    pub weak: Vec<Series>,
}

impl Report {
    /// Finds the strong- and weak-scaling series among `configs`.
    ///
    /// A problem measured in one configuration only gets a (one-row) strong
    /// table unless it belongs to a weak-scaling series, so that every run
    /// shows up somewhere without weak-scaling runs cluttering the output.
    pub fn new(configs: Vec<Config>) -> Report {
        let weak = weak_series(&configs);
        let in_weak: BTreeSet<&Problem> = weak
            .iter()
            .flat_map(|s| s.rows.iter().map(|r| &r.config.problem))
            .collect();
        let mut by_problem: BTreeMap<&Problem, Vec<Config>> = BTreeMap::new();
        for c in &configs {
            by_problem.entry(&c.problem).or_default().push(c.clone());
        }
        let strong = by_problem
            .into_iter()
            .filter(|(p, cs)| cs.len() > 1 || !in_weak.contains(p))
            .map(|(_, cs)| Series::strong(cs))
            .collect();
        Report {
            configs: configs.clone(),
            strong,
            weak,
        }
    }

    /// All tables, as plain text or GitHub markdown, with a legend at the end.
    pub fn render(&self, markdown: bool) -> String {
        let mut out = String::new();
        for series in self.strong.iter().chain(&self.weak) {
            let table = series.table();
            out.push_str(&if markdown {
                table.markdown()
            } else {
                table.text()
            });
            out.push('\n');
        }
        out.push_str(LEGEND);
        out
    }
}

const LEGEND: &str = "\
wall: median over the runs of a configuration. speedup S = T(base)/T; efficiency: \
S/(cores/base cores) for strong scaling, T(base)/T for weak scaling.
Karp-Flatt e = (1/S - 1/p')/(1 - 1/p'), p' = cores/base cores: the serial fraction \
implied by S; e growing with p' means overhead grows with the ranks.
compute: slowest rank's compute / wall; comm: serialize+scatter+gather+assemble / wall.
";

/// Groups configurations of a workload and schedule whose items per core
/// agree within [`WEAK_TOLERANCE`], keeping groups with two core counts or more.
fn weak_series(configs: &[Config]) -> Vec<Series> {
    let mut by_family: BTreeMap<(&str, &str), Vec<&Config>> = BTreeMap::new();
    for c in configs {
        by_family
            .entry((&c.problem.workload, &c.problem.schedule))
            .or_default()
            .push(c);
    }
    let mut series = Vec::new();
    for mut family in by_family.into_values() {
        family.sort_by(|a, b| a.items_per_core().total_cmp(&b.items_per_core()));
        let mut start = 0;
        while start < family.len() {
            let first = family[start].items_per_core();
            let end = start
                + family[start..]
                    .iter()
                    .take_while(|c| c.items_per_core() <= first * (1.0 + WEAK_TOLERANCE))
                    .count();
            let group = &family[start..end];
            let cores: BTreeSet<u64> = group.iter().map(|c| c.cores()).collect();
            if cores.len() > 1 {
                series.push(Series::weak(group.iter().map(|&c| c.clone()).collect()));
            }
            start = end;
        }
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record line with the given shape; phases scale with the wall time.
    fn line(workload: &str, items: u64, ranks: u64, nodes: u64, wall: f64) -> String {
        let hosts: Vec<String> = (0..ranks)
            .map(|r| format!("\"node{}\"", r * nodes / ranks))
            .collect();
        format!(
            r#"{{"workload":"{workload}","items":{items},"ranks":{ranks},"nodes":{nodes},"hosts":[{}],"threads":1,"schedule":"static","ordered":true,"chunk":1,"chunks":{ranks},"wall_s":{wall},"prepare_s":0.0,"phases":{{"serialize":{s},"scatter":{s},"compute":{{"min":{c},"mean":{c},"max":{c}}},"wait":0.0,"gather":{s},"assemble":{s}}},"bytes_scattered":0,"bytes_gathered":0,"items_per_s":1.0,"imbalance":1.0,"answer":{{"text":"","value":null}},"checksum":"00","part":null,"per_rank":[]}}"#,
            hosts.join(","),
            s = wall * 0.01,
            c = wall * 0.9,
        )
    }

    fn report(lines: &[String]) -> Report {
        let (records, warnings) = crate::cli::record::parse_records(&lines.join("\n"), "t.jsonl");
        assert!(warnings.is_empty(), "{warnings:?}");
        Report::new(reduce(&records))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn formulas_match_hand_computed_values() {
        // T1 = 10, T2 = 6, T4 = 4.
        let (s2, s4) = (speedup(10.0, 6.0), speedup(10.0, 4.0));
        assert!(close(s2, 1.667) && close(s4, 2.5));
        assert!(close(efficiency(s2, 2.0), 0.833) && close(efficiency(s4, 4.0), 0.625));
        assert!(close(karp_flatt(s2, 2.0).unwrap(), 0.2));
        assert!(close(karp_flatt(s4, 4.0).unwrap(), 0.2));
        assert_eq!(karp_flatt(1.0, 1.0), None);
    }

    #[test]
    fn strong_scaling_reduces_repeats_and_compares_with_one_core() {
        let r = report(&[
            line("primes", 100, 1, 1, 10.0),
            line("primes", 100, 2, 1, 6.0),
            line("primes", 100, 2, 1, 5.0),
            line("primes", 100, 2, 1, 100.0),
            line("primes", 100, 4, 1, 4.0),
        ]);
        assert!(r.weak.is_empty());
        let [s] = &r.strong[..] else {
            panic!("one strong series expected: {r:?}")
        };
        let walls: Vec<f64> = s.rows.iter().map(|r| r.config.wall_s).collect();
        assert_eq!(walls, [10.0, 6.0, 4.0], "median of 5, 6, 100 is 6");
        assert_eq!(s.rows[1].config.runs, 3);
        assert_eq!(s.rows[0].karp_flatt, None);
        assert!(close(s.rows[1].efficiency, 0.833));
        assert!(close(s.rows[2].karp_flatt.unwrap(), 0.2));
        assert!(close(s.rows[2].config.compute_share(), 0.9));
        assert!(close(s.rows[2].config.communication_share(), 0.04));
    }

    #[test]
    fn placements_share_one_table_and_one_base() {
        let r = report(&[
            line("pi", 8, 1, 1, 8.0),
            line("pi", 8, 2, 1, 4.0),
            line("pi", 8, 2, 2, 5.0),
        ]);
        let s = &r.strong[0];
        assert_eq!(s.rows.len(), 3);
        // Equal cores: the single-node run is listed (and would be the base) first.
        assert_eq!((s.rows[1].config.nodes, s.rows[2].config.nodes), (1, 2));
        assert!(close(s.rows[2].speedup.unwrap(), 1.6));
        assert_eq!(s.rows[2].config.ranks_per_node(), 1);
    }

    #[test]
    fn weak_scaling_is_found_within_one_percent() {
        let r = report(&[
            line("square", 1000, 1, 1, 2.0),
            line("square", 2000, 2, 1, 2.5),
            line("square", 4030, 4, 2, 4.0),
            line("square", 9000, 4, 2, 9.0),
        ]);
        let [w] = &r.weak[..] else {
            panic!("one weak series expected: {r:?}")
        };
        let eff: Vec<f64> = w.rows.iter().map(|r| r.efficiency).collect();
        assert_eq!(eff, [1.0, 0.8, 0.5]);
        // Weak-only problems get no one-row strong table; the lone 9000 run does.
        assert_eq!(r.strong.len(), 1);
        assert_eq!(r.strong[0].problem.items, 9000);
    }

    #[test]
    fn tables_render_as_text_and_markdown() {
        let r = report(&[line("pi", 8, 1, 1, 8.0), line("pi", 8, 2, 1, 4.0)]);
        let text = r.render(false);
        assert!(text.contains("Strong scaling: pi, 8 items, static schedule"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1].len(), lines[2].len(), "header and rule align");
        assert!(lines[3].trim_end().ends_with('%'));
        assert!(lines[3].contains(" - "), "no Karp-Flatt at the base");
        let md = r.render(true);
        assert!(md.contains("### Strong scaling"));
        assert!(md.contains("| ranks | threads |"));
        assert!(md.contains("|---:|---:|"));
        assert!(md.contains("| 2 | 1 | 1 | 2 | 2 | 1 | 4.000 s | 2.000 | 1.000 | 0.000 |"));
    }
}
