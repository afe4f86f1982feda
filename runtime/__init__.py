"""runvm, vmparity's reference VM runtime: host side (runvm/), guest agent (agent/), guest image build (guest/)."""
