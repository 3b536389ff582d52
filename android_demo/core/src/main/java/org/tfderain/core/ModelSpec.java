package org.tfderain.core;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * A parsed {@code model_spec.json}: what the app needs to know about a bundled {@code .tflite}
 * model (written by {@code tfderain.export.export_tflite} / {@code export/android_assets.py}).
 *
 * <p>Schema (version 1): {@code format} = "tfderain-model-spec", {@code spec_version}, {@code
 * model}, {@code config}, {@code tfderain_version}, {@code file}, {@code sha256}, {@code
 * quantization}, {@code tile} ({@code {"height", "width"}} or null for a dynamic-size model),
 * {@code multiple}, {@code halo}, {@code overlap} (2 × halo), {@code value_range}, {@code inputs}
 * and {@code outputs}: lists of tensors {@code {"name", "index", "shape", "dtype", "quantization":
 * {"scale", "zero_point"} | null}} with the logical names {@code rainy}, {@code derained} and
 * (density-aware models) {@code density}.
 */
public final class ModelSpec {
  /** Value of the {@code format} key. */
  public static final String FORMAT = "tfderain-model-spec";
  /** The schema version this class reads. */
  public static final int SPEC_VERSION = 1;
  /** Logical name of the input image tensor. */
  public static final String INPUT_RAINY = "rainy";
  /** Logical name of the restored image tensor. */
  public static final String OUTPUT_DERAINED = "derained";
  /** Logical name of the rain density tensor of density-aware models. */
  public static final String OUTPUT_DENSITY = "density";
  /** Every top-level key of the schema, in the order the exporter writes them. */
  public static final List<String> KEYS =
      Collections.unmodifiableList(
          java.util.Arrays.asList(
              "format",
              "spec_version",
              "model",
              "config",
              "tfderain_version",
              "file",
              "sha256",
              "quantization",
              "tile",
              "multiple",
              "halo",
              "overlap",
              "value_range",
              "inputs",
              "outputs"));
  /** Keys of one tensor entry. */
  public static final List<String> TENSOR_KEYS =
      Collections.unmodifiableList(
          java.util.Arrays.asList("name", "index", "shape", "dtype", "quantization"));

  /** One input or output tensor of the model. */
  public static final class Tensor {
    public final String name;
    public final int index;
    public final int[] shape;
    public final DType dtype;
    /** Quantization scale, or 0 for a float tensor. */
    public final float scale;
    /** Quantization zero point (0 for a float tensor). */
    public final int zeroPoint;

    Tensor(String name, int index, int[] shape, DType dtype, float scale, int zeroPoint) {
      this.name = name;
      this.index = index;
      this.shape = shape;
      this.dtype = dtype;
      this.scale = scale;
      this.zeroPoint = zeroPoint;
    }

    /** Whether values are stored as integers with a scale and zero point. */
    public boolean isQuantized() {
      return dtype != DType.FLOAT32;
    }

    /** Number of elements. */
    public int elements() {
      int n = 1;
      for (int d : shape) {
        n *= d;
      }
      return n;
    }

    /** Size in bytes. */
    public int bytes() {
      return elements() * dtype.bytes;
    }
  }

  public final String source;
  public final String model;
  public final String file;
  public final String sha256;
  public final String quantization;
  /** Fixed tile height, or 0 for a dynamic-size model. */
  public final int tileHeight;
  /** Fixed tile width, or 0 for a dynamic-size model. */
  public final int tileWidth;

  public final int multiple;
  public final int halo;
  public final int overlap;
  public final Tensor input;
  public final Tensor derained;
  /** The density output, or null for models that are not density-aware. */
  public final Tensor density;

  public final List<Tensor> outputs;

  private ModelSpec(String source, Map<String, Object> root) {
    this.source = source;
    String format = str(root, "format");
    if (!FORMAT.equals(format)) {
      throw error("'format' is '" + format + "', expected '" + FORMAT + "'");
    }
    int version = integer(root, "spec_version");
    if (version != SPEC_VERSION) {
      throw error("unsupported spec_version " + version + " (this app reads " + SPEC_VERSION + ")");
    }
    for (String key : KEYS) {
      if (!root.containsKey(key)) {
        throw error("missing key '" + key + "'");
      }
    }
    model = str(root, "model");
    file = str(root, "file");
    sha256 = str(root, "sha256");
    quantization = str(root, "quantization");
    Object tile = root.get("tile");
    if (tile == null) {
      tileHeight = 0;
      tileWidth = 0;
    } else {
      Map<String, Object> t = map(tile, "tile");
      tileHeight = positive(t, "height", "tile.height");
      tileWidth = positive(t, "width", "tile.width");
    }
    multiple = positive(root, "multiple", "multiple");
    halo = integer(root, "halo");
    overlap = integer(root, "overlap");
    if (halo < 0 || overlap != 2 * halo) {
      throw error("'overlap' (" + overlap + ") must be 2 x 'halo' (" + halo + ")");
    }
    if (tileHeight % multiple != 0 || tileWidth % multiple != 0) {
      throw error("tile " + tileHeight + "x" + tileWidth + " is not a multiple of " + multiple);
    }
    List<Object> range = list(root.get("value_range"), "value_range");
    if (range.size() != 2 || num(range.get(0)) != 0.0 || num(range.get(1)) != 1.0) {
      throw error("'value_range' must be [0.0, 1.0], got " + range);
    }
    List<Tensor> ins = tensors(root.get("inputs"), "inputs");
    outputs = Collections.unmodifiableList(tensors(root.get("outputs"), "outputs"));
    input = find(ins, INPUT_RAINY, "inputs");
    derained = find(outputs, OUTPUT_DERAINED, "outputs");
    Tensor d = null;
    for (Tensor t : outputs) {
      if (t.name.equals(OUTPUT_DENSITY)) {
        d = t;
      }
    }
    density = d;
    if (tileHeight > 0) {
      int[] expected = {1, tileHeight, tileWidth, 3};
      for (Tensor t : new Tensor[] {input, derained}) {
        if (!java.util.Arrays.equals(t.shape, expected)) {
          throw error(
              "tensor '"
                  + t.name
                  + "' has shape "
                  + java.util.Arrays.toString(t.shape)
                  + ", expected "
                  + java.util.Arrays.toString(expected));
        }
      }
    }
  }

  /** Parses a spec; {@code source} names it in error messages. */
  public static ModelSpec parse(String json, String source) {
    Object root = Json.parse(json, source);
    if (!(root instanceof Map)) {
      throw new IllegalArgumentException(source + ": a model spec must be a JSON object");
    }
    @SuppressWarnings("unchecked")
    Map<String, Object> map = (Map<String, Object>) root;
    return new ModelSpec(source, map);
  }

  /** Reads and parses a spec file. */
  public static ModelSpec load(Path path) throws IOException {
    return parse(new String(Files.readAllBytes(path), StandardCharsets.UTF_8), path.toString());
  }

  /** Whether the model takes a fixed tile size (all current exports do). */
  public boolean hasFixedTile() {
    return tileHeight > 0;
  }

  /** Whether the model also predicts a rain density. */
  public boolean isDensityAware() {
    return density != null;
  }

  private IllegalArgumentException error(String message) {
    return new IllegalArgumentException(source + ": " + message);
  }

  private Tensor find(List<Tensor> list, String name, String where) {
    for (Tensor t : list) {
      if (t.name.equals(name)) {
        return t;
      }
    }
    throw error("'" + where + "' has no tensor named '" + name + "'");
  }

  private List<Tensor> tensors(Object value, String where) {
    List<Tensor> result = new ArrayList<>();
    List<Object> items = list(value, where);
    for (int i = 0; i < items.size(); i++) {
      String at = where + "[" + i + "]";
      Map<String, Object> m = map(items.get(i), at);
      for (String key : TENSOR_KEYS) {
        if (!m.containsKey(key)) {
          throw error("missing key '" + key + "' in " + at);
        }
      }
      String name = str(m, "name");
      int index = integer(m, "index");
      List<Object> dims = list(m.get("shape"), at + ".shape");
      int[] shape = new int[dims.size()];
      for (int k = 0; k < shape.length; k++) {
        shape[k] = (int) num(dims.get(k));
        if (shape[k] < 1 || shape[k] != num(dims.get(k))) {
          throw error(at + ".shape has a bad dimension " + dims.get(k));
        }
      }
      DType dtype = DType.parse(str(m, "dtype"), source + ": " + at);
      Object q = m.get("quantization");
      float scale = 0f;
      int zeroPoint = 0;
      if (dtype == DType.FLOAT32) {
        if (q != null) {
          throw error(at + " is float32 but has a quantization");
        }
      } else {
        Map<String, Object> qm = map(q, at + ".quantization");
        scale = (float) num(qm.get("scale"));
        zeroPoint = (int) num(qm.get("zero_point"));
        if (!(scale > 0f) || zeroPoint < dtype.min || zeroPoint > dtype.max) {
          throw error(at + " has a bad quantization " + qm);
        }
      }
      result.add(new Tensor(name, index, shape, dtype, scale, zeroPoint));
    }
    return result;
  }

  private String str(Map<String, Object> m, String key) {
    Object v = m.get(key);
    if (!(v instanceof String)) {
      throw error("'" + key + "' must be a string, got " + v);
    }
    return (String) v;
  }

  private int integer(Map<String, Object> m, String key) {
    Object v = m.get(key);
    if (!(v instanceof Double) || num(v) != Math.rint(num(v))) {
      throw error("'" + key + "' must be an integer, got " + v);
    }
    return (int) num(v);
  }

  private int positive(Map<String, Object> m, String key, String label) {
    if (!m.containsKey(key)) {
      throw error("missing key '" + label + "'");
    }
    int v = integer(m, key);
    if (v < 1) {
      throw error("'" + label + "' must be >= 1, got " + v);
    }
    return v;
  }

  private double num(Object v) {
    if (!(v instanceof Double)) {
      throw error("expected a number, got " + v);
    }
    return (Double) v;
  }

  @SuppressWarnings("unchecked")
  private Map<String, Object> map(Object v, String where) {
    if (!(v instanceof Map)) {
      throw error("'" + where + "' must be an object, got " + v);
    }
    return (Map<String, Object>) v;
  }

  @SuppressWarnings("unchecked")
  private List<Object> list(Object v, String where) {
    if (!(v instanceof List)) {
      throw error("'" + where + "' must be a list, got " + v);
    }
    return (List<Object>) v;
  }
}
