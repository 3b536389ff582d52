package org.tfderain.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.ByteBuffer;
import java.util.concurrent.CancellationException;
import org.junit.Test;

public class TiledDerainerTest {
  /** Copies the input tile to the output; density output = tile number. */
  static final class IdentityEngine implements Engine {
    int calls;

    @Override
    public void run(ByteBuffer input, ByteBuffer[] outputs) {
      outputs[0].put(input.duplicate());
      if (outputs.length > 1) {
        outputs[1].putFloat(calls);
      }
      calls++;
    }
  }

  private static RgbImage photo(int h, int w) {
    byte[] rgb = new byte[h * w * 3];
    for (int i = 0; i < rgb.length; i++) {
      rgb[i] = (byte) ((i * 37 + i / 7) & 0xff);
    }
    return RgbImage.fromRgbBytes(rgb, h, w);
  }

  @Test
  public void identityModelGivesBackTheImage() throws Exception {
    ModelSpec spec = ModelSpec.parse(SpecFixtures.spec("float32", "null"), "s.json");
    RgbImage image = photo(37, 23);
    IdentityEngine engine = new IdentityEngine();
    TiledDerainer.Result r = new TiledDerainer(spec, engine).run(image, null);
    // Tiles of 16 with overlap 8 (step 8): rows 0 7 14 21, columns 0 7 -> 4 x 2 tiles.
    assertEquals(8, engine.calls);
    assertEquals(8, r.tiles);
    assertNull(r.density);
    assertArrayEquals(image.toRgbBytes(), r.image.toRgbBytes());
  }

  @Test
  public void quantizedIdentityModelGivesBackTheImage() throws Exception {
    ModelSpec spec =
        ModelSpec.parse(
            SpecFixtures.spec("uint8", "{\"scale\": 0.003921568859368563, \"zero_point\": 0}"),
            "s.json");
    RgbImage image = photo(9, 40);
    TiledDerainer.Result r = new TiledDerainer(spec, new IdentityEngine()).run(image, null);
    assertArrayEquals(image.toRgbBytes(), r.image.toRgbBytes());
  }

  @Test
  public void densityIsTheMeanOverTiles() throws Exception {
    String extra =
        ", {\"name\": \"density\", \"index\": 1, \"shape\": [1, 1], \"dtype\": \"float32\","
            + " \"quantization\": null}";
    ModelSpec spec = ModelSpec.parse(SpecFixtures.spec("float32", "null", extra, 16, 4), "s.json");
    TiledDerainer.Result r = new TiledDerainer(spec, new IdentityEngine()).run(photo(16, 30), null);
    assertEquals(3, r.tiles); // columns 0, 7, 14
    assertEquals(1f, r.density[0], 0f); // (0 + 1 + 2) / 3
  }

  @Test
  public void progressCanCancel() throws Exception {
    ModelSpec spec = ModelSpec.parse(SpecFixtures.spec("float32", "null"), "s.json");
    IdentityEngine engine = new IdentityEngine();
    try {
      new TiledDerainer(spec, engine).run(photo(40, 40), (done, total) -> done < 2);
      fail("not cancelled");
    } catch (CancellationException e) {
      assertTrue(e.getMessage().contains("after 2 tiles"));
    }
    assertEquals(2, engine.calls);
  }
}
