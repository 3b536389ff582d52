package org.tfderain.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;

public class ModelSpecTest {
  private static void assertRejected(String json, String fragment) {
    try {
      ModelSpec.parse(json, "assets/m/model_spec.json");
      fail("accepted a spec that should fail with: " + fragment);
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().startsWith("assets/m/model_spec.json: "));
      assertTrue(e.getMessage(), e.getMessage().contains(fragment));
      assertFalse("one line", e.getMessage().contains("\n"));
    }
  }

  @Test
  public void parsesAQuantizedSpec() {
    ModelSpec s =
        ModelSpec.parse(
            SpecFixtures.spec("uint8", "{\"scale\": 0.003921568859368563, \"zero_point\": 0}"),
            "x.json");
    assertEquals("prenet", s.model);
    assertEquals("m.tflite", s.file);
    assertEquals(16, s.tileHeight);
    assertEquals(4, s.halo);
    assertEquals(8, s.overlap);
    assertEquals(DType.UINT8, s.input.dtype);
    assertEquals(1f / 255f, s.input.scale, 0f);
    assertEquals(16 * 16 * 3, s.input.bytes());
    assertFalse(s.isDensityAware());
    assertNull(s.density);
  }

  @Test
  public void findsTheDensityOutput() {
    String extra =
        ", {\"name\": \"density\", \"index\": 1, \"shape\": [1, 1], \"dtype\": \"float32\","
            + " \"quantization\": null}";
    ModelSpec s = ModelSpec.parse(SpecFixtures.spec("float32", "null", extra, 16, 4), "x.json");
    assertTrue(s.isDensityAware());
    assertEquals(1, s.density.index);
    assertEquals(4, s.density.bytes());
  }

  @Test
  public void badSpecsGetOneLineErrorsNamingTheFileAndProblem() {
    String good = SpecFixtures.spec("float32", "null");
    assertRejected(good.replace("\"halo\": 4,", ""), "missing key 'halo'");
    assertRejected(good.replace("\"overlap\": 8", "\"overlap\": 9"), "must be 2 x 'halo'");
    assertRejected(good.replace("tfderain-model-spec", "other"), "'format' is 'other'");
    assertRejected(good.replace("\"spec_version\": 1", "\"spec_version\": 2"), "spec_version 2");
    assertRejected(good.replace("\"rainy\"", "\"image\""), "no tensor named 'rainy'");
    assertRejected(good.replace("float32", "float16"), "unsupported dtype 'float16'");
    assertRejected(SpecFixtures.spec("uint8", "null"), "quantization");
    assertRejected(good.replace("[1, 16, 16, 3]", "[1, 8, 8, 3]"), "has shape [1, 8, 8, 3]");
    assertRejected(good.substring(0, 50), "invalid JSON");
  }
}
