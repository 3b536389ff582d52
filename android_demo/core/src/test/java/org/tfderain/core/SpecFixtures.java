package org.tfderain.core;

/** Hand-written model specs for tests (independent of the exporter). */
final class SpecFixtures {
  private SpecFixtures() {}

  /** A 16x16-tile spec whose input and output have {@code dtype} and {@code quantization}. */
  static String spec(String dtype, String quantization) {
    return spec(dtype, quantization, "", 16, 4);
  }

  static String spec(String dtype, String quantization, String extraOutputs, int tile, int halo) {
    String shape = "[1, " + tile + ", " + tile + ", 3]";
    return "{\"format\": \"tfderain-model-spec\", \"spec_version\": 1, \"model\": \"prenet\","
        + " \"config\": {\"stages\": 2}, \"tfderain_version\": \"0.1.0\","
        + " \"file\": \"m.tflite\", \"sha256\": \"00\", \"quantization\": \"int8\","
        + " \"tile\": {\"height\": " + tile + ", \"width\": " + tile + "},"
        + " \"multiple\": 1, \"halo\": " + halo + ", \"overlap\": " + 2 * halo + ","
        + " \"value_range\": [0.0, 1.0],"
        + " \"inputs\": [{\"name\": \"rainy\", \"index\": 0, \"shape\": " + shape
        + ", \"dtype\": \"" + dtype + "\", \"quantization\": " + quantization + "}],"
        + " \"outputs\": [{\"name\": \"derained\", \"index\": 0, \"shape\": " + shape
        + ", \"dtype\": \"" + dtype + "\", \"quantization\": " + quantization + "}"
        + extraOutputs + "]}";
  }
}
