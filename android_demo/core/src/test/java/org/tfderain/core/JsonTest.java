package org.tfderain.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

public class JsonTest {
  @Test
  public void parsesEveryKindOfValue() {
    Object v =
        Json.parse(
            "{\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\\"\\u00e9\\n\", \"o\": {}}",
            "t");
    Map<?, ?> m = (Map<?, ?>) v;
    List<?> a = (List<?>) m.get("a");
    assertEquals(Arrays.asList(1.0, -2500.0, true, false, null), a);
    assertEquals("x\"\u00e9\n", m.get("s"));
    assertTrue(((Map<?, ?>) m.get("o")).isEmpty());
    assertNull(Json.parse(" null ", "t"));
  }

  @Test
  public void float32ValuesWrittenByPythonRoundTrip() {
    // Python: json.dumps(float(np.float32(1 / 255))) == "0.003921568859368563"
    float f = (float) (double) (Double) Json.parse("0.003921568859368563", "t");
    assertEquals(Float.floatToIntBits(1f / 255f), Float.floatToIntBits(f));
  }

  @Test
  public void errorsNameTheSourceAndOffset() {
    for (String bad : new String[] {"{", "[1,]", "{\"a\" 1}", "01", "\"x", "{} x", "{\"a\":1,\"a\":2}"}) {
      try {
        Json.parse(bad, "spec.json");
        fail("accepted " + bad);
      } catch (IllegalArgumentException e) {
        assertTrue(e.getMessage(), e.getMessage().startsWith("spec.json: invalid JSON at offset"));
      }
    }
  }
}
