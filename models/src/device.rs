//! Device selection: where a model runs, as a user chooses it (`cpu`, `cuda`, `auto`) and as
//! LibTorch names it. Plain `FromStr`/`Display`, so command-line layers parse it with their
//! own `value_parser` and this crate stays free of clap.

use std::fmt;
use std::str::FromStr;

use tch::Device;

/// Where a model runs, as chosen on a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU; refused when LibTorch sees none.
    Cuda,
    /// CUDA when available, else the CPU.
    Auto,
}

/// A device choice that cannot be honoured or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// `cuda` was asked for on a machine where LibTorch sees no CUDA device.
    #[error(
        "--device cuda: no CUDA device is available (LibTorch sees none); use --device cpu or auto"
    )]
    NoCuda,
    /// A name other than `cpu`, `cuda` or `auto`.
    #[error("unknown device '{0}': expected one of cpu, cuda, auto")]
    Unknown(String),
}

impl DeviceChoice {
    /// The accepted names, in the order help texts list them.
    pub const NAMES: [&'static str; 3] = ["cpu", "cuda", "auto"];

    /// The name a command line uses for this choice.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Auto => "auto",
        }
    }

    /// Resolves the choice to a LibTorch device.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => Err(DeviceError::NoCuda),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    /// Parses `cpu`, `cuda` or `auto` (exact, lower case, as the command lines accept them).
    fn from_str(name: &str) -> Result<DeviceChoice, DeviceError> {
        match name {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "auto" => Ok(DeviceChoice::Auto),
            other => Err(DeviceError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name a service reports for a device ("cpu", "cuda:0").
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for name in DeviceChoice::NAMES {
            let choice: DeviceChoice = name.parse().unwrap();
            assert_eq!(choice.to_string(), name);
        }
        assert_eq!(
            "gpu".parse::<DeviceChoice>(),
            Err(DeviceError::Unknown("gpu".into()))
        );
        assert!("CPU".parse::<DeviceChoice>().is_err(), "names are exact");
    }

    #[test]
    fn cpu_resolves_and_names_itself() {
        assert_eq!(DeviceChoice::Cpu.resolve(), Ok(Device::Cpu));
        assert_eq!(device_name(Device::Cpu), "cpu");
        assert_eq!(device_name(Device::Cuda(1)), "cuda:1");
        if !tch::Cuda::is_available() {
            assert_eq!(DeviceChoice::Cuda.resolve(), Err(DeviceError::NoCuda));
            assert_eq!(DeviceChoice::Auto.resolve(), Ok(Device::Cpu));
        }
    }
}
