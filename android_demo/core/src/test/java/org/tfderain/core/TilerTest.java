package org.tfderain.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Map;
import org.junit.Test;

public class TilerTest {
  @Test
  public void tileStartsEqualPythonTileStarts() throws Exception {
    Map<String, Object> cases = Golden.json(Golden.dir().resolve("tiling.json"));
    int n = 0;
    for (Object item : Golden.list(cases.get("tile_starts"))) {
      Map<String, Object> c = Golden.map(item);
      int[] a = Golden.ints(c.get("args"));
      assertArrayEquals(
          java.util.Arrays.toString(a),
          Golden.ints(c.get("starts")),
          Tiler.tileStarts(a[0], a[1], a[2], a[3]));
      n++;
    }
    assertTrue("too few cases: " + n, n > 50);
    for (Object item : Golden.list(cases.get("tile_starts_errors"))) {
      int[] a = Golden.ints(item);
      try {
        Tiler.tileStarts(a[0], a[1], a[2], a[3]);
        fail("no error for " + java.util.Arrays.toString(a));
      } catch (IllegalArgumentException expected) {
        assertTrue(expected.getMessage().contains("too small"));
      }
    }
  }

  @Test
  public void tilesCoverTheImageWithTheRequiredOverlap() {
    // 4032 px, tile 256, overlap 128: step 128, so 1 + ceil(3776 / 128) = 31 tiles.
    int[] s = Tiler.tileStarts(4032, 256, 128, 8);
    assertEquals(31, s.length);
    assertEquals(0, s[0]);
    assertEquals(4032 - 256, s[s.length - 1]);
    for (int i = 1; i < s.length; i++) {
      assertEquals(0, s[i] % 8);
      assertTrue(s[i - 1] + 256 - s[i] >= 128);
    }
    assertArrayEquals(new int[] {0}, Tiler.tileStarts(200, 256, 128, 1));
  }

  @Test
  public void reflectIndexIsNumpyReflect() throws Exception {
    Map<String, Object> cases = Golden.json(Golden.dir().resolve("tiling.json"));
    for (Object item : Golden.list(cases.get("reflect"))) {
      Map<String, Object> c = Golden.map(item);
      int n = Golden.integer(c.get("n"));
      int[] expected = Golden.ints(c.get("indices"));
      for (int i = 0; i < expected.length; i++) {
        assertEquals("n=" + n + " i=" + i, expected[i], Tiler.reflectIndex(i, n));
      }
    }
    // Independent check: size 3 reads 0 1 2 | 1 0 1 2 1 0.
    int[] got = new int[9];
    for (int i = 0; i < 9; i++) {
      got[i] = Tiler.reflectIndex(i, 3);
    }
    assertArrayEquals(new int[] {0, 1, 2, 1, 0, 1, 2, 1, 0}, got);
  }

  @Test
  public void smallImagesArePaddedUpToTheTileAndMultiple() {
    Tiler t = new Tiler(10, 30, 16, 16, 4, 2);
    assertEquals(16, t.paddedHeight);
    assertEquals(32, t.paddedWidth);
    assertArrayEquals(new int[] {0}, t.ys);
    // Overlap 4, multiple 4: step (16 - 4) // 4 * 4 = 12, 1 + ceil(16 / 12) = 3 tiles over 32.
    assertArrayEquals(new int[] {0, 8, 16}, t.xs);
    RgbImage img = new RgbImage(10, 30);
    for (int i = 0; i < img.data.length; i++) {
      img.data[i] = i;
    }
    RgbImage p = t.pad(img);
    // Row 10 mirrors row 8; column 30 mirrors column 28.
    assertEquals(img.data[(8 * 30 + 5) * 3 + 1], p.data[(10 * 32 + 5) * 3 + 1], 0f);
    assertEquals(img.data[(2 * 30 + 28) * 3], p.data[(2 * 32 + 30) * 3], 0f);
  }

  @Test
  public void tilesThatCannotOverlapAreRejected() {
    try {
      new Tiler(600, 600, 256, 256, 1, 128);
      fail("expected an error");
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage(), e.getMessage().contains("overlap of 256"));
    }
  }
}
