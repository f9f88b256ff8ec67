//! A user's own serde types through the pool: particles in, energies out.
//! Anything `Serialize + Deserialize` travels; the closure can capture
//! read-only parameters (every rank builds them the same way). A
//! `#[repr(C)]` struct of numbers that derives `bytemuck::Pod` can be
//! registered to travel as its bytes (no serde call per item): the same
//! results, faster.
//! Run: `mpirun -n 3 target/release/examples/custom_struct`.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

/// Plain old data: numbers only, no padding, serde's field order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable, Serialize, Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

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

    // Registered on every rank before the map: points move as bytes.
    assert!(hpcmap::register_plain::<Point>(), "Point is plain");
    let input = pool.is_root().then(|| {
        (0..10_000)
            .map(|i| Point {
                x: f64::from(i),
                y: 0.5,
            })
            .collect::<Vec<_>>()
    });
    let rotate = |p: Point| Point { x: -p.y, y: p.x };
    let mapped = pool.map(input.as_deref(), rotate).expect("map succeeds");
    if let (Some(rotated), Some(input)) = (mapped.results, input) {
        let serial: Vec<Point> = input.into_iter().map(rotate).collect();
        assert_eq!(rotated, serial);
        println!(
            "{} points rotated as plain bytes: matches the serial map",
            rotated.len()
        );
    }
}
