package org.tfderain.core;

/** Element types of the model's input and output tensors (the spec's {@code dtype}). */
public enum DType {
  UINT8("uint8", 1, 0, 255),
  INT8("int8", 1, -128, 127),
  FLOAT32("float32", 4, 0, 0);

  /** The name in {@code model_spec.json}. */
  public final String specName;
  /** Bytes per element. */
  public final int bytes;
  /** Smallest and largest quantized value (0 for float32). */
  public final int min;

  public final int max;

  DType(String specName, int bytes, int min, int max) {
    this.specName = specName;
    this.bytes = bytes;
    this.min = min;
    this.max = max;
  }

  /** The type named {@code name}; {@code where} prefixes the error message. */
  public static DType parse(String name, String where) {
    for (DType t : values()) {
      if (t.specName.equals(name)) {
        return t;
      }
    }
    throw new IllegalArgumentException(
        where + ": unsupported dtype '" + name + "' (expected uint8, int8 or float32)");
  }
}
