// The inference core: plain Java, no Android or third-party dependency, so that its tests run
// on any JVM (see run_tests.sh, which CI uses without Gradle).
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // The golden vectors live in src/test/resources/golden (see tools/make_golden.py).
    systemProperty("tfderain.golden", file("src/test/resources/golden").absolutePath)
}
