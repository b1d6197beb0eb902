//! Instructions per evaluation, a measure that machine load does not disturb (BENCHMARKS.md).
//!
//! `instructions ENGINE POPULATION ROUNDS` builds 1,000 distinct users as ENGINE's contexts and
//! evaluates each of them ROUNDS times. Run it under `valgrind --tool=callgrind` with ROUNDS = 0
//! and ROUNDS = R: the difference of the two instruction totals, divided by 1,000 × R, is the
//! cost of one evaluation. `bench/peers/instructions.sh` does exactly that for every engine.
//!
//! ENGINE: tailor | unleash | growthbook | launchdarkly; POPULATION: targeted | non_matching.

use std::hint::black_box;
use std::process::ExitCode;

use tailor_bench_peers::growthbook::GrowthBookCore;
use tailor_bench_peers::launchdarkly::LaunchDarkly;
use tailor_bench_peers::tailor::Tailor;
use tailor_bench_peers::unleash::Unleash;
use tailor_bench_peers::{Engine, Person};

const USERS: usize = 1_000;

fn run<E: Engine>(person: fn(usize) -> Person, rounds: usize) {
    let engine = E::new();
    let contexts: Vec<E::Context> = (0..USERS).map(|i| E::context(&person(i))).collect();
    for _ in 0..rounds {
        for ctx in &contexts {
            black_box(engine.evaluate(black_box(ctx)));
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [engine, population, rounds] = args.as_slice() else {
        eprintln!("usage: instructions ENGINE POPULATION ROUNDS");
        return ExitCode::FAILURE;
    };
    let person: fn(usize) -> Person = match population.as_str() {
        "targeted" => Person::targeted,
        "non_matching" => Person::non_matching,
        other => {
            eprintln!("unknown population {other}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(rounds) = rounds.parse() else {
        eprintln!("ROUNDS must be a number");
        return ExitCode::FAILURE;
    };
    match engine.as_str() {
        "tailor" => run::<Tailor>(person, rounds),
        "unleash" => run::<Unleash>(person, rounds),
        "growthbook" => run::<GrowthBookCore>(person, rounds),
        "launchdarkly" => run::<LaunchDarkly>(person, rounds),
        other => {
            eprintln!("unknown engine {other}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
