package org.tfderain.core;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;

/** Access to the golden vectors written by {@code android_demo/tools/make_golden.py}. */
final class Golden {
  private Golden() {}

  /** The golden folder: system property {@code tfderain.golden}, else the committed one. */
  static Path dir() {
    return Paths.get(System.getProperty("tfderain.golden", "src/test/resources/golden"));
  }

  static byte[] bytes(Path path) throws IOException {
    return Files.readAllBytes(path);
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> json(Path path) throws IOException {
    String text = new String(Files.readAllBytes(path), StandardCharsets.UTF_8);
    return (Map<String, Object>) Json.parse(text, path.toString());
  }

  @SuppressWarnings("unchecked")
  static List<Object> list(Object value) {
    return (List<Object>) value;
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> map(Object value) {
    return (Map<String, Object>) value;
  }

  static int integer(Object value) {
    return (int) (double) (Double) value;
  }

  static int[] ints(Object value) {
    List<Object> items = list(value);
    int[] out = new int[items.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = integer(items.get(i));
    }
    return out;
  }

  static float[] floats(Object value) {
    List<Object> items = list(value);
    float[] out = new float[items.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = (float) (double) (Double) items.get(i);
    }
    return out;
  }
}
