//! A user's own serde types through the pool: particles in, energies out.
//! Anything `Serialize + Deserialize` travels; the closure can capture
//! read-only parameters (every rank builds them the same way).
//! Run: `mpirun -n 3 target/release/examples/custom_struct`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Particle {
    id: u32,
    mass: f64,
    velocity: [f64; 3],
    label: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Energy {
    id: u32,
    kinetic: f64,
    tag: String,
}

fn energy(p: Particle, scale: f64) -> Energy {
    let v2: f64 = p.velocity.iter().map(|v| v * v).sum();
    Energy {
        id: p.id,
        kinetic: scale * 0.5 * p.mass * v2,
        tag: p.label.to_uppercase(),
    }
}

fn particles(n: u32) -> Vec<Particle> {
    (0..n)
        .map(|i| Particle {
            id: i,
            mass: 1.0 + f64::from(i % 7),
            velocity: [f64::from(i), -0.5 * f64::from(i), 2.0],
            label: format!("p{i}"),
        })
        .collect()
}

fn main() {
    let pool = hpcmap::Pool::init().expect("MPI starts");
    let scale = 2.0; // a parameter every rank knows
    let input = pool.is_root().then(|| particles(1000));
    let mapped = pool
        .map(input.as_deref(), |p: Particle| energy(p, scale))
        .expect("map succeeds");
    if let (Some(energies), Some(input)) = (mapped.results, input) {
        let serial: Vec<Energy> = input.into_iter().map(|p| energy(p, scale)).collect();
        assert_eq!(energies, serial);
        println!(
            "{} energies from {} ranks: matches the serial map (first {:?})",
            energies.len(),
            pool.size(),
            energies[0]
        );
    }
}
