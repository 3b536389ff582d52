plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

android {
    namespace = "org.tfderain.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.tfderain.demo"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = true
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_11
        targetCompatibility = JavaVersion.VERSION_11
    }
    kotlinOptions {
        jvmTarget = "11"
    }

    buildFeatures {
        viewBinding = true
    }

    // Models are memory-mapped straight from the APK: keep them uncompressed.
    androidResources {
        noCompress += "tflite"
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.appcompat)
    implementation(libs.androidx.activity.ktx)
    implementation(libs.androidx.lifecycle.viewmodel.ktx)
    implementation(libs.androidx.lifecycle.runtime.ktx)
    implementation(libs.androidx.constraintlayout)
    implementation(libs.androidx.exifinterface)
    implementation(libs.material)
    implementation(libs.kotlinx.coroutines.android)
    implementation(libs.camerax.core)
    implementation(libs.camerax.camera2)
    implementation(libs.camerax.lifecycle)
    implementation(libs.camerax.view)
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.litert.gpu.api)
}

// The .tflite models are not in the repository: `python export/android_assets.py` writes them
// (see README.md). Fail early, with the command to run, when they are missing. These paths are
// ModelAssets.REQUIRED_SPECS (tests/test_android_assets.py checks that both lists agree).
val requiredModelSpecs = listOf(
    "models/rainunet_int8/model_spec.json",
    "models/rainunet_fp16/model_spec.json",
)

val checkModelAssets by tasks.registering {
    description = "Checks that the exported models are in src/main/assets."
    val assets = layout.projectDirectory.dir("src/main/assets")
    inputs.files(requiredModelSpecs.map { assets.file(it) }).optional()
    doLast {
        val missing = requiredModelSpecs.filter { !assets.file(it).asFile.isFile }
        if (missing.isNotEmpty()) {
            throw GradleException(
                "Missing model assets ${missing.joinToString()} in ${assets.asFile}. " +
                    "From the repository root run: python export/android_assets.py " +
                    "(see android_demo/README.md).",
            )
        }
    }
}

tasks.named("preBuild") {
    dependsOn(checkModelAssets)
}
